SELECT sc, sv, _e.1 AS w, _e.2 AS n, _e.3 AS l, _e.4 AS f, _e.5 AS b, _e.6 AS tp, _e.7 AS sn, _e.8 AS sl, _e.9 AS sf, _e.10 AS sb, _e.11 AS stp
FROM (
  SELECT sc, sv, sum(n + sn) AS _rank, groupArray((w, n, l, f, b, tp, sn, sl, sf, sb, stp)) AS _es
  FROM (
    SELECT arrayElement(['', 'country', 'merchant_category'], _si + 1) AS sc, sv, w, countIf(_role = 0 AND _dec < 2) AS n, countIf(_role = 0 AND _dec < 2 AND _ok) AS l, countIf(_role = 0 AND _dec < 2 AND _ok AND _y = 1) AS f, countIf(_role = 0 AND _dec < 2 AND _ok AND _dec = 1) AS b, countIf(_role = 0 AND _dec < 2 AND _ok AND _y = 1 AND _dec = 1) AS tp, countIf(_role = 1 AND _dec < 2) AS sn, countIf(_role = 1 AND _dec < 2 AND _ok) AS sl, countIf(_role = 1 AND _dec < 2 AND _ok AND _y = 1) AS sf, countIf(_role = 1 AND _dec < 2 AND _ok AND _dec = 1) AS sb, countIf(_role = 1 AND _dec < 2 AND _ok AND _y = 1 AND _dec = 1) AS stp, arrayJoin(range(3)) AS _si, multiIf(_si = 0, '', _si = 1, _c0, _c1) AS sv
    FROM (
      SELECT _w AS w, _role, _dec, _y, _lab = 1 AND toUInt32(_lat) < toUInt32(_ts) + 2592000 AS _ok, _c0, _c1
      FROM (
        SELECT multiIf(`ts` >= toDateTime(1792152000) AND `ts` < toDateTime(1792238400), 0, `ts` >= toDateTime(1792065600) AND `ts` < toDateTime(1792152000), 1, `ts` >= toDateTime(1791979200) AND `ts` < toDateTime(1792065600), 2, `ts` >= toDateTime(1791892800) AND `ts` < toDateTime(1791979200), 3, `ts` >= toDateTime(1791806400) AND `ts` < toDateTime(1791892800), 4, `ts` >= toDateTime(1791720000) AND `ts` < toDateTime(1791806400), 5, `ts` >= toDateTime(1791633600) AND `ts` < toDateTime(1791720000), 6, `ts` >= toDateTime(1791547200) AND `ts` < toDateTime(1791633600), 7, 255) AS _w, `ts` AS _ts, `request_id` AS _id, if(`role` = 'production', 0, 1) AS _role, toUInt8(if(ifNull(`decision` = 1, 0), 1, if(ifNull(`decision` = 0, 0), 0, 2))) AS _dec, `score` AS _score, multiIf(ifNull(toString(`country`), '') = '', '(null)', substring(ifNull(toString(`country`), ''), 1, 1) = '(', concat('(', ifNull(toString(`country`), '')), ifNull(toString(`country`), '')) AS _c0, multiIf(ifNull(toString(`merchant_category`), '') = '', '(null)', substring(ifNull(toString(`merchant_category`), ''), 1, 1) = '(', concat('(', ifNull(toString(`merchant_category`), '')), ifNull(toString(`merchant_category`), '')) AS _c1
        FROM `db`.`predictions`
        PREWHERE ((`ts` >= toDateTime(1792152000) AND `ts` < toDateTime(1792238400)) OR (`ts` >= toDateTime(1792065600) AND `ts` < toDateTime(1792152000)) OR (`ts` >= toDateTime(1791979200) AND `ts` < toDateTime(1792065600)) OR (`ts` >= toDateTime(1791892800) AND `ts` < toDateTime(1791979200)) OR (`ts` >= toDateTime(1791806400) AND `ts` < toDateTime(1791892800)) OR (`ts` >= toDateTime(1791720000) AND `ts` < toDateTime(1791806400)) OR (`ts` >= toDateTime(1791633600) AND `ts` < toDateTime(1791720000)) OR (`ts` >= toDateTime(1791547200) AND `ts` < toDateTime(1791633600)))
    WHERE `model` = 'fraud' AND `role` IN ('production', 'shadow')
      ) AS p
      ANY LEFT JOIN (
        SELECT `request_id` AS _id, argMin(toUInt8(ifNull(`label` = 1, 0)), `labeled_at`) AS _y, min(`labeled_at`) AS _lat, toUInt8(1) AS _lab
        FROM `db`.`fraud_labels`
        WHERE ifNull(`labeled_at` >= toDateTime(1791547200) AND `labeled_at` < toDateTime(1794830400), 0)
        GROUP BY _id
      ) AS l USING _id
      WHERE _w != 255 AND _role < 2
    )
    GROUP BY _si, sv, w
  )
  GROUP BY sc, sv
  ORDER BY sc, _rank DESC, sv
  LIMIT 50 BY sc
) ARRAY JOIN _es AS _e
ORDER BY sc, sv, w
