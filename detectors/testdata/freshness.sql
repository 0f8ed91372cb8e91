SELECT max(`ts`) AS newest, count() AS n FROM `db`.`predictions` PREWHERE ((`ts` >= toDateTime(1794828600) AND `ts` < toDateTime(1794830400)))
    WHERE `model` = 'fraud' AND `role` = 'production'
