-- ind.consent_status — programme clients in the knowledge base, programme clients held
-- back because no consent has arrived, and persons erased after withdrawing consent.
CREATE OR REPLACE VIEW ind.consent_status AS
SELECT programme_clients, awaiting_consent, withdrawn_erased, consent_snapshot_period
FROM kb.build_info;
