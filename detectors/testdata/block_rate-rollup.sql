SELECT sc, sv, _e.1 AS w, _e.2 AS n, _e.3 AS x, _e.4 AS sn, _e.5 AS sx, _e.6 AS bins, _e.7 AS bn, _e.8 AS sbins, _e.9 AS bsn, _e.10 AS bd, _e.11 AS sbd
FROM (
  SELECT sc, sv, sum(n + bd + sn + sbd) AS _rank, groupArray((w, n, x, sn, sx, bins, bn, sbins, bsn, bd, sbd)) AS _es
  FROM (
    SELECT sc, sv, w, n, x, sn, sx, _hp.1 AS bins, _hp.2 AS bn, _hs.1 AS sbins, _hs.2 AS bsn, bd, sbd
    FROM (
      SELECT sc, sv, w, sumIf(_n - _bd, _r = 0) AS n, sumIf(_x, _r = 0) AS x, sumIf(_n - _bd, _r = 1) AS sn, sumIf(_x, _r = 1) AS sx,
        sumIf(_bd, _r = 0) AS bd, sumIf(_bd, _r = 1) AS sbd,
        sumMapIf(_h.1, _h.2, _r = 0) AS _hp, sumMapIf(_h.1, _h.2, _r = 1) AS _hs
      FROM (
        SELECT multiIf(minute >= toDateTime(1794826800) AND minute < toDateTime(1794830400), 0, minute >= toDateTime(1794740400) AND minute < toDateTime(1794744000), 1, minute >= toDateTime(1794654000) AND minute < toDateTime(1794657600), 2, minute >= toDateTime(1794567600) AND minute < toDateTime(1794571200), 3, minute >= toDateTime(1794481200) AND minute < toDateTime(1794484800), 4, minute >= toDateTime(1794394800) AND minute < toDateTime(1794398400), 5, minute >= toDateTime(1794308400) AND minute < toDateTime(1794312000), 6, minute >= toDateTime(1794222000) AND minute < toDateTime(1794225600), 7, 255) AS w, role_code AS _r, slice AS sc, value AS sv, countMerge(n) AS _n, sumMerge(blocked) AS _x, sumMerge(bad_decisions) AS _bd, sumMapMerge(score_hist) AS _h
        FROM `db`.`predictions_1m`
        PREWHERE ((minute >= toDateTime(1794826800) AND minute < toDateTime(1794830400)) OR (minute >= toDateTime(1794740400) AND minute < toDateTime(1794744000)) OR (minute >= toDateTime(1794654000) AND minute < toDateTime(1794657600)) OR (minute >= toDateTime(1794567600) AND minute < toDateTime(1794571200)) OR (minute >= toDateTime(1794481200) AND minute < toDateTime(1794484800)) OR (minute >= toDateTime(1794394800) AND minute < toDateTime(1794398400)) OR (minute >= toDateTime(1794308400) AND minute < toDateTime(1794312000)) OR (minute >= toDateTime(1794222000) AND minute < toDateTime(1794225600)))
    WHERE model_value = 'fraud' AND has(['', 'country', 'merchant_category'], slice)
        GROUP BY w, _r, sc, sv
      )
      GROUP BY sc, sv, w
    )
  )
  GROUP BY sc, sv
  ORDER BY sc, _rank DESC, sv
  LIMIT 50 BY sc
) ARRAY JOIN _es AS _e
ORDER BY sc, sv, w
