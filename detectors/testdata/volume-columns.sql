SELECT sc, sv, _e.1 AS w, _e.2 AS n
FROM (
  SELECT sc, sv, sum(n) AS _rank, groupArray((w, n)) AS _es
  FROM (
    SELECT arrayElement(['', 'country', 'merchant_category'], _si + 1) AS sc, sv, w, count() AS n, arrayJoin(range(3)) AS _si, multiIf(_si = 0, '', _si = 1, _c0, _c1) AS sv
    FROM (
      SELECT multiIf(`ts` >= toDateTime(1794826800) AND `ts` < toDateTime(1794830400), 0, `ts` >= toDateTime(1794740400) AND `ts` < toDateTime(1794744000), 1, `ts` >= toDateTime(1794654000) AND `ts` < toDateTime(1794657600), 2, `ts` >= toDateTime(1794567600) AND `ts` < toDateTime(1794571200), 3, `ts` >= toDateTime(1794481200) AND `ts` < toDateTime(1794484800), 4, `ts` >= toDateTime(1794394800) AND `ts` < toDateTime(1794398400), 5, `ts` >= toDateTime(1794308400) AND `ts` < toDateTime(1794312000), 6, `ts` >= toDateTime(1794222000) AND `ts` < toDateTime(1794225600), 7, 255) AS w, multiIf(ifNull(toString(`country`), '') = '', '(null)', substring(ifNull(toString(`country`), ''), 1, 1) = '(', concat('(', ifNull(toString(`country`), '')), ifNull(toString(`country`), '')) AS _c0, multiIf(ifNull(toString(`merchant_category`), '') = '', '(null)', substring(ifNull(toString(`merchant_category`), ''), 1, 1) = '(', concat('(', ifNull(toString(`merchant_category`), '')), ifNull(toString(`merchant_category`), '')) AS _c1
      FROM `db`.`predictions`
      PREWHERE ((`ts` >= toDateTime(1794826800) AND `ts` < toDateTime(1794830400)) OR (`ts` >= toDateTime(1794740400) AND `ts` < toDateTime(1794744000)) OR (`ts` >= toDateTime(1794654000) AND `ts` < toDateTime(1794657600)) OR (`ts` >= toDateTime(1794567600) AND `ts` < toDateTime(1794571200)) OR (`ts` >= toDateTime(1794481200) AND `ts` < toDateTime(1794484800)) OR (`ts` >= toDateTime(1794394800) AND `ts` < toDateTime(1794398400)) OR (`ts` >= toDateTime(1794308400) AND `ts` < toDateTime(1794312000)) OR (`ts` >= toDateTime(1794222000) AND `ts` < toDateTime(1794225600)))
    WHERE `model` = 'fraud'
    )
    GROUP BY _si, sv, w
  )
  GROUP BY sc, sv
  ORDER BY sc, _rank DESC, sv
  LIMIT 50 BY sc
) ARRAY JOIN _es AS _e
ORDER BY sc, sv, w
