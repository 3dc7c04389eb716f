package ledger

import (
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// cardsLock is the lock statement of a batch of card transactions: besides
// the accounts, the cards of the authorisations and money messages ($2:
// PAN lookup hashes), found once for their decisions and to name their
// balances (user accounts) and their programs' partner credit/deposit
// accounts. $1 are the accounts of the specs decided before, of either
// kind. It scans each card into r.
func cardsLock(r *cardScan) lockRows {
	return lockRows{
		With: `found AS MATERIALIZED (SELECT c.pan_lookup, c.id, c.program_id, c.user_id, c.account_id, c.type, c.state, c.lock_code,
		c.expiry, c.pan_first6, c.pan_last4, c.cvc_generation, c.pvv, c.pin_tries, c.version, c.created_at, c.verify_tries
		FROM cards c WHERE c.pan_lookup = ANY ($2)),`,
		Users: `SELECT unnest($1::bigint[]) UNION ALL SELECT account_id FROM found`,
		Others: `SELECT unnest($1::bigint[])
		UNION ALL SELECT partner_account_id FROM programs WHERE id = ANY (ARRAY(SELECT program_id FROM found))`,
		Select: `SELECT pan_lookup, id, program_id, user_id, account_id, type, state, lock_code, expiry,
		pan_first6, pan_last4, cvc_generation, pvv, pin_tries, version, created_at, verify_tries FROM found`,
		Dest: []any{&r.lookup, &r.id, &r.prog, &r.user, &r.acc, &r.typ, &r.state, &r.lock, &r.expiry, &r.first6, &r.last4,
			&r.gen, &r.pvv, &r.tries, &r.version, &r.created, &r.vtries},
	}
}

// cardScan is a card as the lock statement returns it: NULL in the rows of
// accounts. pgtype values, not pointers: NULLs cost no allocation.
type cardScan struct {
	lookup                            []byte
	id, prog, user, acc, version      pgtype.Int8
	typ, state, expiry, first6, last4 pgtype.Text
	pvv                               pgtype.Text
	lock                              pgtype.Int2
	gen, tries, vtries                pgtype.Int4
	created                           pgtype.Timestamptz
}

// QueueLockCards is QueueLock for a batch of card transactions that knows
// its cards by PAN lookup hash: in the same statement it finds the cards
// of lookups, locks their user accounts and the user accounts among
// accounts (in ascending id order, as QueueLock), reads their programs'
// partner accounts and the other accounts among accounts, and reserves n
// hold ids. card is called with each card found and its lookup hash
// before the accounts are read.
func (b *HoldBatch) QueueLockCards(q *pgx.Batch, n int, accounts []int64, lookups [][]byte, card func(lookup []byte, c CardRow) error) {
	var r cardScan
	lr := cardsLock(&r)
	lr.Row = func() error {
		if !r.id.Valid || !r.prog.Valid || !r.user.Valid || !r.acc.Valid || !r.typ.Valid || !r.state.Valid || !r.lock.Valid ||
			!r.expiry.Valid || !r.first6.Valid || !r.last4.Valid || !r.gen.Valid || !r.pvv.Valid || !r.tries.Valid || !r.version.Valid {
			return errors.New("card lookup: a card row has NULL columns")
		}
		return card(r.lookup, CardRow{ID: r.id.Int64, ProgramID: r.prog.Int64, UserID: r.user.Int64, AccountID: r.acc.Int64,
			Type: r.typ.String, State: r.state.String, LockCode: r.lock.Int16, Expiry: r.expiry.String,
			PANFirst6: r.first6.String, PANLast4: r.last4.String, CVCGeneration: int(r.gen.Int32), PVV: r.pvv.String,
			PINTries: int(r.tries.Int32), Version: r.version.Int64, CreatedAt: r.created.Time, VerifyTries: int(r.vtries.Int32)})
	}
	b.queueLockWith(q, n, lr, accounts, lookups)
}

// CardsLockSQL is the SQL of the lock statement of a batch of card
// transactions ($1: account ids, $2: PAN lookup hashes), for the bench to
// show its plan (loadtest bench -explain).
func CardsLockSQL() string {
	var r cardScan
	return cardsLock(&r).Statement()
}
