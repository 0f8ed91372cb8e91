SELECT sc, sv, _e.1 AS w, _e.2 AS n, _e.3 AS b, _e.4 AS m, _e.5 AS l, _e.6 AS f, _e.7 AS lb, _e.8 AS tp
FROM (
  SELECT sc, sv, sum(n) AS _rank, groupArray((w, n, b, m, l, f, lb, tp)) AS _es
  FROM (
    SELECT arrayElement(['', 'country', 'merchant_category'], _si + 1) AS sc, sv, w, countIf(_dec < 2) AS n, countIf(_dec = 1) AS b, countIf(_dec < 2 AND _mat) AS m, countIf(_dec < 2 AND _ok) AS l, countIf(_dec < 2 AND _ok AND _y = 1) AS f, countIf(_ok AND _dec = 1) AS lb, countIf(_ok AND _y = 1 AND _dec = 1) AS tp, arrayJoin(range(3)) AS _si, multiIf(_si = 0, '', _si = 1, _c0, _c1) AS sv
    FROM (
      SELECT _g AS w, _dec, _ts < toDateTime(1792238400) AS _mat, _y, _mat AND _lab = 1 AND toUInt32(_lat) < toUInt32(_ts) + 2592000 AS _ok, _c0, _c1
      FROM (
        SELECT if(`role` = 'production', 0, 1) AS _role, toUInt8(if(ifNull(`decision` = 1, 0), 1, if(ifNull(`decision` = 0, 0), 0, 2))) AS _dec, `score` AS _score, _role AS _g, `ts` AS _ts, `request_id` AS _id, multiIf(ifNull(toString(`country`), '') = '', '(null)', substring(ifNull(toString(`country`), ''), 1, 1) = '(', concat('(', ifNull(toString(`country`), '')), ifNull(toString(`country`), '')) AS _c0, multiIf(ifNull(toString(`merchant_category`), '') = '', '(null)', substring(ifNull(toString(`merchant_category`), ''), 1, 1) = '(', concat('(', ifNull(toString(`merchant_category`), '')), ifNull(toString(`merchant_category`), '')) AS _c1
        FROM `db`.`predictions`
        PREWHERE ((`ts` >= toDateTime(1794225600) AND `ts` < toDateTime(1794830400)))
    WHERE `model` = 'fraud' AND `role` IN ('production', 'shadow')
      ) AS p
      ANY LEFT JOIN (
        SELECT `request_id` AS _id, argMin(toUInt8(ifNull(`label` = 1, 0)), `labeled_at`) AS _y, min(`labeled_at`) AS _lat, toUInt8(1) AS _lab
        FROM `db`.`fraud_labels`
        WHERE ifNull(`labeled_at` >= toDateTime(1794225600) AND `labeled_at` < toDateTime(1794830400), 0)
        GROUP BY _id
      ) AS l USING _id
      WHERE _g < 2
    )
    GROUP BY _si, sv, w
  )
  GROUP BY sc, sv
  ORDER BY sc, _rank DESC, sv
  LIMIT 50 BY sc
) ARRAY JOIN _es AS _e
ORDER BY sc, sv, w
