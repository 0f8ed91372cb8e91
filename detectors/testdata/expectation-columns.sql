SELECT sc, sv, _e.1 AS w, _e.2 AS n, _e.3 AS x
FROM (
  SELECT sc, sv, sum(n) AS _rank, groupArray((w, n, x)) AS _es
  FROM (
    SELECT arrayElement([''], _si + 1) AS sc, sv, w, countIf(_dec < 2) AS n, countIf(_dec = 1) AS x, toUInt8(0) AS _si, '' AS sv
    FROM (
      SELECT multiIf(`ts` >= toDateTime(1794826800) AND `ts` < toDateTime(1794830400), 0, 255) AS w, toUInt8(if(ifNull(`decision` = 1, 0), 1, if(ifNull(`decision` = 0, 0), 0, 2))) AS _dec
      FROM `db`.`predictions`
      PREWHERE ((`ts` >= toDateTime(1794826800) AND `ts` < toDateTime(1794830400)))
    WHERE `model` = 'fraud' AND has(['FR', 'DE'], toString(`country`)) AND toString(`merchant_category`) = 'golden'
    )
    GROUP BY _si, sv, w
  )
  GROUP BY sc, sv
  ORDER BY sc, _rank DESC, sv
  LIMIT 50 BY sc
) ARRAY JOIN _es AS _e
ORDER BY sc, sv, w
