SELECT sc, sv, _e.1 AS w, _e.2 AS n, _e.3 AS pb, _e.4 AS sb, _e.5 AS unpaired, _e.6 AS nc, _e.7 AS sa, _e.8 AS sbs, _e.9 AS saa, _e.10 AS sbb, _e.11 AS sab, _e.12 AS prod_only, _e.13 AS bd, _e.14 AS rows, _e.15 AS er, _e.16 AS dr
FROM (
  SELECT sc, sv, sum(rows) AS _rank, groupArray((w, n, pb, sb, unpaired, nc, sa, sbs, saa, sbb, sab, prod_only, bd, rows, er, dr)) AS _es
  FROM (
    SELECT arrayElement(['', 'country', 'merchant_category'], _si + 1) AS sc, sv, _w AS w, countIf(paired AND pd < 2 AND sd < 2) AS n, countIf(paired AND pd < 2 AND sd < 2 AND pd = 1 AND sd = 0) AS pb, countIf(paired AND pd < 2 AND sd < 2 AND pd = 0 AND sd = 1) AS sb, countIf(NOT paired AND NOT noid AND NOT dup) AS unpaired, countIf(paired AND ifNull(a >= 0 AND a <= 1 AND b >= 0 AND b <= 1, 0)) AS nc, sumIf(a, paired AND ifNull(a >= 0 AND a <= 1 AND b >= 0 AND b <= 1, 0)) AS sa, sumIf(b, paired AND ifNull(a >= 0 AND a <= 1 AND b >= 0 AND b <= 1, 0)) AS sbs, sumIf(a * a, paired AND ifNull(a >= 0 AND a <= 1 AND b >= 0 AND b <= 1, 0)) AS saa, sumIf(b * b, paired AND ifNull(a >= 0 AND a <= 1 AND b >= 0 AND b <= 1, 0)) AS sbb, sumIf(a * b, paired AND ifNull(a >= 0 AND a <= 1 AND b >= 0 AND b <= 1, 0)) AS sab, countIf(NOT paired AND hasp AND NOT noid AND NOT dup) AS prod_only, countIf(paired AND NOT (paired AND pd < 2 AND sd < 2)) AS bd, sum(nrows) AS rows, sumIf(nrows, noid) AS er, sumIf(nrows, dup) AS dr, arrayJoin(range(3)) AS _si, multiIf(_si = 0, '', _si = 1, _c0, _c1) AS sv
    FROM (
      SELECT min(_w0) AS _w, anyIf(_d, _p) AS pd, anyIf(_d, NOT _p) AS sd,
          anyIf(_sc, _p) AS a, anyIf(_sc, NOT _p) AS b, countIf(_p) AS _np, countIf(NOT _p) AS _ns, count() AS nrows,
          min(_e) AS noid, NOT noid AND (_np > 1 OR _ns > 1) AS dup, NOT noid AND _np = 1 AND _ns = 1 AS paired, _np > 0 AS hasp, argMax(_v0, _p) AS _c0, argMax(_v1, _p) AS _c1
        FROM (
          SELECT multiIf(`ts` >= toDateTime(1794826800) AND `ts` < toDateTime(1794830400), 0, `ts` >= toDateTime(1794740400) AND `ts` < toDateTime(1794744000), 1, `ts` >= toDateTime(1794654000) AND `ts` < toDateTime(1794657600), 2, `ts` >= toDateTime(1794567600) AND `ts` < toDateTime(1794571200), 3, `ts` >= toDateTime(1794481200) AND `ts` < toDateTime(1794484800), 4, `ts` >= toDateTime(1794394800) AND `ts` < toDateTime(1794398400), 5, `ts` >= toDateTime(1794308400) AND `ts` < toDateTime(1794312000), 6, `ts` >= toDateTime(1794222000) AND `ts` < toDateTime(1794225600), 7, 255) AS _w0, `role` = 'production' AS _p, toUInt8(if(ifNull(`decision` = 1, 0), 1, if(ifNull(`decision` = 0, 0), 0, 2))) AS _d, toFloat64(`score`) AS _sc, `request_id` AS _id, _id = '' AS _e, multiIf(ifNull(toString(`country`), '') = '', '(null)', substring(ifNull(toString(`country`), ''), 1, 1) = '(', concat('(', ifNull(toString(`country`), '')), ifNull(toString(`country`), '')) AS _v0, multiIf(ifNull(toString(`merchant_category`), '') = '', '(null)', substring(ifNull(toString(`merchant_category`), ''), 1, 1) = '(', concat('(', ifNull(toString(`merchant_category`), '')), ifNull(toString(`merchant_category`), '')) AS _v1
          FROM `db`.`predictions`
          PREWHERE ((`ts` >= toDateTime(1794826800) AND `ts` < toDateTime(1794830400)) OR (`ts` >= toDateTime(1794740400) AND `ts` < toDateTime(1794744000)) OR (`ts` >= toDateTime(1794654000) AND `ts` < toDateTime(1794657600)) OR (`ts` >= toDateTime(1794567600) AND `ts` < toDateTime(1794571200)) OR (`ts` >= toDateTime(1794481200) AND `ts` < toDateTime(1794484800)) OR (`ts` >= toDateTime(1794394800) AND `ts` < toDateTime(1794398400)) OR (`ts` >= toDateTime(1794308400) AND `ts` < toDateTime(1794312000)) OR (`ts` >= toDateTime(1794222000) AND `ts` < toDateTime(1794225600)))
    WHERE `model` = 'fraud' AND `role` IN ('production', 'shadow')
        )
        GROUP BY if(_e, rand64(), cityHash64(_id))
    )
    WHERE _w != 255
    GROUP BY _si, sv, w
  )
  GROUP BY sc, sv
  ORDER BY sc, _rank DESC, sv
  LIMIT 50 BY sc
) ARRAY JOIN _es AS _e
ORDER BY sc, sv, w
