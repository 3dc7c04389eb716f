-- Card creation limits (issue 21, cardhost: checkQuota) count a partner's
-- cards of the last hour through its programs.
CREATE INDEX cards_program_created ON cards (program_id, created_at);
