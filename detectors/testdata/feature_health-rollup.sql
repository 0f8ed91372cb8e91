SELECT '' AS sc, '' AS sv, feature, w, if(feature = '', _rows, 0) AS rows, nn, if(feature = '', 0, zeros) AS fills,
  if(nn > 0, vmin, NULL) AS mn, if(nn > 0, vmax, NULL) AS mx, _h.1 AS bins, _h.2 AS cnts,
  toUInt64(0) AS blk, toUInt64(0) AS nblk, toUInt64(0) AS fblk
FROM (
  SELECT multiIf(minute >= toDateTime(1794826800) AND minute < toDateTime(1794830400), 0, minute >= toDateTime(1794740400) AND minute < toDateTime(1794744000), 1, minute >= toDateTime(1794654000) AND minute < toDateTime(1794657600), 2, minute >= toDateTime(1794567600) AND minute < toDateTime(1794571200), 3, minute >= toDateTime(1794481200) AND minute < toDateTime(1794484800), 4, minute >= toDateTime(1794394800) AND minute < toDateTime(1794398400), 5, minute >= toDateTime(1794308400) AND minute < toDateTime(1794312000), 6, minute >= toDateTime(1794222000) AND minute < toDateTime(1794225600), 7, 255) AS w, feature, countMerge(n) AS _rows, sumMerge(nn) AS nn, sumMerge(zeros) AS zeros,
    minMerge(vmin) AS vmin, maxMerge(vmax) AS vmax, sumMapMerge(hist) AS _h
  FROM `db`.`predictions_1m_features`
  PREWHERE ((minute >= toDateTime(1794826800) AND minute < toDateTime(1794830400)) OR (minute >= toDateTime(1794740400) AND minute < toDateTime(1794744000)) OR (minute >= toDateTime(1794654000) AND minute < toDateTime(1794657600)) OR (minute >= toDateTime(1794567600) AND minute < toDateTime(1794571200)) OR (minute >= toDateTime(1794481200) AND minute < toDateTime(1794484800)) OR (minute >= toDateTime(1794394800) AND minute < toDateTime(1794398400)) OR (minute >= toDateTime(1794308400) AND minute < toDateTime(1794312000)) OR (minute >= toDateTime(1794222000) AND minute < toDateTime(1794225600)))
    WHERE model_value = 'fraud'
  GROUP BY w, feature
)
ORDER BY sc, sv, feature, w
