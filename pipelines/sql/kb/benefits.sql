-- kb.benefits: Kela payments per person, month and benefit, in euros.
-- Sorted by person: the impact comparison builds one payment list per person from it, and
-- reading it in person order is what keeps that step at seconds at national scale (measured:
-- unsorted, the sort saved here cost twice over in the impact tables).
-- refresh: by person
CREATE TABLE kb.benefits AS
SELECT pseudonym, month, benefit, days::SMALLINT AS days, paid_eur, municipal_share_eur
FROM stg_kela
ORDER BY pseudonym, month, benefit;
