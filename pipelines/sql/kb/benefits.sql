-- kb.benefits: Kela payments per person, month and benefit, in euros.
CREATE TABLE kb.benefits AS
SELECT pseudonym, month, benefit, days::SMALLINT AS days, paid_eur, municipal_share_eur
FROM stg_kela
ORDER BY pseudonym, month, benefit;
