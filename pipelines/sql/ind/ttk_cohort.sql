-- ind.ttk_cohort — the TTK cohort of the contract, in one place: programme clients in kb.clients
-- with a first TTK start; their index date is first_ttk_start. Every cohort indicator reads it.
CREATE OR REPLACE VIEW ind.ttk_cohort AS
SELECT pseudonym, first_ttk_start AS index_date, date_trunc('month', first_ttk_start)::DATE AS index_month,
       sex, birth_year, municipality, temporary_id, first_coaching_start
FROM kb.clients
WHERE programme_client AND first_ttk_start IS NOT NULL;
