-- kb.episodes: every service episode of a client, one row per episode and source.
-- refresh: by person
CREATE TABLE kb.episodes AS
SELECT * FROM (
    SELECT pseudonym, 'ttk' AS source, 'TTK' AS service, start_date, end_date, end_reason,
           referral_source, referral_date
    FROM stg_ttk
    UNION ALL
    SELECT pseudonym, 'valmennus', 'VALMENNUS', coaching_start, coaching_end, NULL, NULL, NULL::DATE
    FROM stg_valmennus
    UNION ALL
    SELECT pseudonym, 'typ', 'TYP', start_date, end_date, NULL, NULL, NULL::DATE FROM stg_typ
    UNION ALL
    SELECT pseudonym, 'kunta', service, start_date, end_date, NULL, NULL, NULL::DATE FROM stg_kunta
)
ORDER BY pseudonym, start_date, service, source;
