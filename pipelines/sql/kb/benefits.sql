-- kb.benefits: Kela payments per person, month and benefit, in euros.
-- In delivery order (months together), not sorted by person: at national scale the sort of
-- tens of millions of rows was most of the knowledge-base step, and no query needs it.
CREATE TABLE kb.benefits AS
SELECT pseudonym, month, benefit, days::SMALLINT AS days, paid_eur, municipal_share_eur
FROM stg_kela;
