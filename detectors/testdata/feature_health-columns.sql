SELECT sc, sv, feature, _e.1 AS w, _e.2 AS feature, _e.3 AS rows, _e.4 AS nn, _e.5 AS fills, _e.6 AS mn, _e.7 AS mx, _e.8 AS bins, _e.9 AS cnts, _e.10 AS blk, _e.11 AS nblk, _e.12 AS fblk
FROM (
  SELECT sc, sv, sum(rows) AS _rank, groupArray((w, feature, rows, nn, fills, mn, mx, bins, cnts, blk, nblk, fblk)) AS _es
  FROM (
    SELECT arrayElement(['', 'country', 'merchant_category'], _si + 1) AS sc, sv, feature, w, sum(_c1) AS rows, sumIf(_c, _k != 65535) AS nn, sumIf(_c, _fl = 1) AS fills,
      minIf(_mn, _k != 65535) AS mn, maxIf(_mx, _k != 65535) AS mx,
      groupArrayIf(_k, _k != 65535) AS bins, groupArrayIf(_c, _k != 65535) AS cnts,
      sum(_cd1) AS blk, sumIf(_cd, _k = 65535) AS nblk, sumIf(_cd, _fl = 1) AS fblk
    FROM (
      SELECT _si, sv, _f AS feature, w, _k, _fl,
        count() AS _c, sum(_e1) AS _c1, min(_x) AS _mn, max(_x) AS _mx, sum(_d) AS _cd, sum(_e1 * _d) AS _cd1
      FROM (
        SELECT _si, sv, w, _f, _d, if(ifNull(isFinite(toFloat64(_v)), 0), bitShiftRight(reinterpretAsUInt64(reinterpretAsString(toFloat64(assumeNotNull(_v)) + 0.)), 49), 65535) AS _k, ifNull(_v, 0) AS _x, toUInt8(_i <= 1) AS _e1,
          toUInt8(ifNull(_v = 0, 0)) AS _fl
        FROM (
          SELECT multiIf(`ts` >= toDateTime(1794826800) AND `ts` < toDateTime(1794830400), 0, `ts` >= toDateTime(1794740400) AND `ts` < toDateTime(1794744000), 1, `ts` >= toDateTime(1794654000) AND `ts` < toDateTime(1794657600), 2, `ts` >= toDateTime(1794567600) AND `ts` < toDateTime(1794571200), 3, `ts` >= toDateTime(1794481200) AND `ts` < toDateTime(1794484800), 4, `ts` >= toDateTime(1794394800) AND `ts` < toDateTime(1794398400), 5, `ts` >= toDateTime(1794308400) AND `ts` < toDateTime(1794312000), 6, `ts` >= toDateTime(1794222000) AND `ts` < toDateTime(1794225600), 7, 255) AS w, multiIf(ifNull(toString(`country`), '') = '', '(null)', substring(ifNull(toString(`country`), ''), 1, 1) = '(', concat('(', ifNull(toString(`country`), '')), ifNull(toString(`country`), '')) AS _c0, multiIf(ifNull(toString(`merchant_category`), '') = '', '(null)', substring(ifNull(toString(`merchant_category`), ''), 1, 1) = '(', concat('(', ifNull(toString(`merchant_category`), '')), ifNull(toString(`merchant_category`), '')) AS _c1, arrayJoin(range(3)) AS _si, multiIf(_si = 0, '', _si = 1, _c0, _c1) AS sv,
            `feature_names` AS _names, arrayResize(`feature_values`, length(`feature_names`), CAST(NULL AS Nullable(Float64))) AS _vals, toUInt8(ifNull(`decision` != 0, 0)) AS _d
          FROM `db`.`predictions`
          PREWHERE ((`ts` >= toDateTime(1794826800) AND `ts` < toDateTime(1794830400)) OR (`ts` >= toDateTime(1794740400) AND `ts` < toDateTime(1794744000)) OR (`ts` >= toDateTime(1794654000) AND `ts` < toDateTime(1794657600)) OR (`ts` >= toDateTime(1794567600) AND `ts` < toDateTime(1794571200)) OR (`ts` >= toDateTime(1794481200) AND `ts` < toDateTime(1794484800)) OR (`ts` >= toDateTime(1794394800) AND `ts` < toDateTime(1794398400)) OR (`ts` >= toDateTime(1794308400) AND `ts` < toDateTime(1794312000)) OR (`ts` >= toDateTime(1794222000) AND `ts` < toDateTime(1794225600)))
    WHERE `model` = 'fraud'
        ) LEFT ARRAY JOIN _names AS _f, _vals AS _v, arrayEnumerate(_names) AS _i
      )
      GROUP BY _si, sv, feature, w, _k, _fl
    )
    GROUP BY _si, sv, feature, w
  )
  GROUP BY sc, sv
  ORDER BY sc, _rank DESC, sv
  LIMIT 50 BY sc
) ARRAY JOIN _es AS _e
ORDER BY sc, sv, feature, w
