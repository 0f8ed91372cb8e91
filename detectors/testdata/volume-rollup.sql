SELECT sc, sv, _e.1 AS w, _e.2 AS n
FROM (
  SELECT sc, sv, sum(n) AS _rank, groupArray((w, n)) AS _es
  FROM (
    SELECT multiIf(minute >= toDateTime(1794826800) AND minute < toDateTime(1794830400), 0, minute >= toDateTime(1794740400) AND minute < toDateTime(1794744000), 1, minute >= toDateTime(1794654000) AND minute < toDateTime(1794657600), 2, minute >= toDateTime(1794567600) AND minute < toDateTime(1794571200), 3, minute >= toDateTime(1794481200) AND minute < toDateTime(1794484800), 4, minute >= toDateTime(1794394800) AND minute < toDateTime(1794398400), 5, minute >= toDateTime(1794308400) AND minute < toDateTime(1794312000), 6, minute >= toDateTime(1794222000) AND minute < toDateTime(1794225600), 7, 255) AS w, slice AS sc, value AS sv, countMerge(n) AS n
    FROM `db`.`predictions_1m`
    PREWHERE ((minute >= toDateTime(1794826800) AND minute < toDateTime(1794830400)) OR (minute >= toDateTime(1794740400) AND minute < toDateTime(1794744000)) OR (minute >= toDateTime(1794654000) AND minute < toDateTime(1794657600)) OR (minute >= toDateTime(1794567600) AND minute < toDateTime(1794571200)) OR (minute >= toDateTime(1794481200) AND minute < toDateTime(1794484800)) OR (minute >= toDateTime(1794394800) AND minute < toDateTime(1794398400)) OR (minute >= toDateTime(1794308400) AND minute < toDateTime(1794312000)) OR (minute >= toDateTime(1794222000) AND minute < toDateTime(1794225600)))
    WHERE model_value = 'fraud' AND role_code = 0 AND has(['', 'country', 'merchant_category'], slice)
    GROUP BY w, sc, sv
  )
  GROUP BY sc, sv
  ORDER BY sc, _rank DESC, sv
  LIMIT 50 BY sc
) ARRAY JOIN _es AS _e
ORDER BY sc, sv, w
