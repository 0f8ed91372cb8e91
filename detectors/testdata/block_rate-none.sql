SELECT sc, sv, _e.1 AS w, _e.2 AS n, _e.3 AS x, _e.4 AS sn, _e.5 AS sx, _e.6 AS bins, _e.7 AS bn, _e.8 AS sbins, _e.9 AS bsn, _e.10 AS bd, _e.11 AS sbd
FROM (
  SELECT sc, sv, sum(n + bd) AS _rank, groupArray((w, n, x, sn, sx, bins, bn, sbins, bsn, bd, sbd)) AS _es
  FROM (
    SELECT arrayElement(['', 'country', 'merchant_category'], _si + 1) AS sc, sv, w, sum(_n) AS n, sum(_x) AS x, sum(_sn) AS sn, sum(_sx) AS sx,
      groupArrayIf(bin, _h > 0) AS bins, groupArrayIf(_h, _h > 0) AS bn,
      groupArrayIf(bin, _sh > 0) AS sbins, groupArrayIf(_sh, _sh > 0) AS bsn,
      sum(_h) - sum(_n) AS bd, sum(_sh) - sum(_sn) AS sbd
    FROM (
      SELECT arrayJoin(range(3)) AS _si, multiIf(_si = 0, '', _si = 1, _c0, _c1) AS sv, _w AS w, _bin AS bin,
        countIf(_role = 0 AND _dec < 2) AS _n, countIf(_role = 0 AND _dec = 1) AS _x, countIf(_role = 0) AS _h,
        countIf(_role = 1 AND _dec < 2) AS _sn, countIf(_role = 1 AND _dec = 1) AS _sx, countIf(_role = 1) AS _sh
      FROM (
        SELECT multiIf(`ts` >= toDateTime(1794826800) AND `ts` < toDateTime(1794830400), 0, `ts` >= toDateTime(1794740400) AND `ts` < toDateTime(1794744000), 1, `ts` >= toDateTime(1794654000) AND `ts` < toDateTime(1794657600), 2, `ts` >= toDateTime(1794567600) AND `ts` < toDateTime(1794571200), 3, `ts` >= toDateTime(1794481200) AND `ts` < toDateTime(1794484800), 4, `ts` >= toDateTime(1794394800) AND `ts` < toDateTime(1794398400), 5, `ts` >= toDateTime(1794308400) AND `ts` < toDateTime(1794312000), 6, `ts` >= toDateTime(1794222000) AND `ts` < toDateTime(1794225600), 7, 255) AS _w,
          0 AS _role, toUInt8(if(ifNull(`decision` = 1, 0), 1, if(ifNull(`decision` = 0, 0), 0, 2))) AS _dec, `score` AS _score,
          if(ifNull(toFloat64(_score) >= 0 AND toFloat64(_score) <= 1, 0), if(ifNull(isFinite(toFloat64(_score)), 0), bitShiftRight(reinterpretAsUInt64(reinterpretAsString(toFloat64(assumeNotNull(_score)) + 0.)), 49), 65535), 65535) AS _bin, multiIf(ifNull(toString(`country`), '') = '', '(null)', substring(ifNull(toString(`country`), ''), 1, 1) = '(', concat('(', ifNull(toString(`country`), '')), ifNull(toString(`country`), '')) AS _c0, multiIf(ifNull(toString(`merchant_category`), '') = '', '(null)', substring(ifNull(toString(`merchant_category`), ''), 1, 1) = '(', concat('(', ifNull(toString(`merchant_category`), '')), ifNull(toString(`merchant_category`), '')) AS _c1
        FROM `db`.`predictions`
        PREWHERE ((`ts` >= toDateTime(1794826800) AND `ts` < toDateTime(1794830400)) OR (`ts` >= toDateTime(1794740400) AND `ts` < toDateTime(1794744000)) OR (`ts` >= toDateTime(1794654000) AND `ts` < toDateTime(1794657600)) OR (`ts` >= toDateTime(1794567600) AND `ts` < toDateTime(1794571200)) OR (`ts` >= toDateTime(1794481200) AND `ts` < toDateTime(1794484800)) OR (`ts` >= toDateTime(1794394800) AND `ts` < toDateTime(1794398400)) OR (`ts` >= toDateTime(1794308400) AND `ts` < toDateTime(1794312000)) OR (`ts` >= toDateTime(1794222000) AND `ts` < toDateTime(1794225600)))
    WHERE `model` = 'fraud'
      )
      GROUP BY _si, sv, w, bin
    )
    GROUP BY _si, sv, w
  )
  GROUP BY sc, sv
  ORDER BY sc, _rank DESC, sv
  LIMIT 50 BY sc
) ARRAY JOIN _es AS _e
ORDER BY sc, sv, w
