package ledger

import (
	"fmt"

	"github.com/jackc/pgx/v5"
)

// MoneyKeys are the original look-up keys of money messages (completions
// and reversals), column by column, for QueueMoneyProbe: Kind is L (by
// DE56 local time in T), T (by DE90 transmission time in T) or R (by RRN
// + STAN among authorisations).
type MoneyKeys struct {
	Kind, Acq, STAN, T, MTI, RRN []string
}

// NewMoneyKeys returns MoneyKeys with room for n keys.
func NewMoneyKeys(n int) MoneyKeys {
	s := func() []string { return make([]string, 0, n) }
	return MoneyKeys{s(), s(), s(), s(), s(), s()}
}

// Add appends one key.
func (k *MoneyKeys) Add(kind, acq, stan, t, mti, rrn string) {
	k.Kind, k.Acq, k.STAN, k.T, k.MTI, k.RRN = append(k.Kind, kind), append(k.Acq, acq), append(k.STAN, stan), append(k.T, t), append(k.MTI, mti), append(k.RRN, rrn)
}

// MoneyOriginal is the original of a money message as QueueMoneyProbe
// finds it: its journal row, and its hold (locked) when it has one.
type MoneyOriginal struct {
	JournalID, HoldID, CardID int64
	Class                     int
	NamesOriginal             bool // it names an original in turn
	Amount                    int64
	Currency                  string
	// The hold's, when HoldID is not 0.
	HoldStatus, HoldCurrency            string
	Held, UserAccount, PartnerAccount   int64
	Excepted, PartsTaken, ToleranceUsed int64
	Part                                bool // the hold is a part of another
}

// moneyProbe finds the originals of money messages ($1 kind: L by DE56
// local time, T by DE90 transmission time, R by RRN + STAN; as the card
// host's single-message look-up reads them) and locks their holds in
// ascending id order: a row per original found (i its request), then a
// row per hold (i 0). Each look-up is an OFFSET 0 probe of
// auth_journal_dedup (acquirer, STAN first), so that a generic plan
// cannot turn it into a read of the journal in id order.
const moneyProbe = `WITH x AS MATERIALIZED (
	SELECT x.i, o.id, o.hold_id, o.card_id, o.class, o.original_id, o.amount, o.currency
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS x(kind, acq, stan, t, mti, rrn, i)
	CROSS JOIN LATERAL (SELECT * FROM (
		SELECT j.id, j.hold_id, j.card_id, j.class, j.original_id, j.amount, j.currency FROM auth_journal j
			WHERE x.kind = 'L' AND j.acquirer_id = x.acq AND j.stan = x.stan AND j.local_time = x.t AND j.mti = x.mti::bpchar OFFSET 0) l
		UNION ALL SELECT * FROM (
		SELECT j.id, j.hold_id, j.card_id, j.class, j.original_id, j.amount, j.currency FROM auth_journal j
			WHERE x.kind = 'T' AND j.acquirer_id = x.acq AND j.stan = x.stan AND j.transmission_time = x.t AND j.mti = x.mti::bpchar OFFSET 0) t
		UNION ALL SELECT * FROM (
		SELECT j.id, j.hold_id, j.card_id, j.class, j.original_id, j.amount, j.currency FROM auth_journal j
			WHERE x.kind = 'R' AND j.acquirer_id = x.acq AND j.stan = x.stan AND j.rrn = x.rrn AND j.class IN (1, 2, 3) OFFSET 0) r
		ORDER BY 1 LIMIT 1) o),
	h AS MATERIALIZED (SELECT id, status, amount, currency, user_account_id, partner_account_id, excepted, parts_taken, parent_id, tolerance_used
		FROM holds WHERE id = ANY (ARRAY(SELECT hold_id FROM x WHERE hold_id IS NOT NULL)) ORDER BY id FOR UPDATE)
	SELECT x.i, x.id, coalesce(x.hold_id, 0), coalesce(x.card_id, 0), x.class, x.original_id IS NOT NULL,
		coalesce(x.amount, 0), coalesce(x.currency, ''), '', 0::bigint, '', 0::bigint, 0::bigint, 0::bigint, 0::bigint, false, 0::bigint
	FROM x
	UNION ALL SELECT 0, 0, h.id, 0, 0, false, 0, '', h.status, h.amount, h.currency, coalesce(h.user_account_id, 0),
		coalesce(h.partner_account_id, 0), h.excepted, h.parts_taken, h.parent_id IS NOT NULL, h.tolerance_used
	FROM h`

// QueueMoneyProbe queues on q the look-up of the originals keyed by k,
// whose holds it locks (user balances are to be locked before: DESIGN
// section 6); found is called, once the rows are read, with the index in k
// of each original found and the original with its hold.
func QueueMoneyProbe(q *pgx.Batch, k MoneyKeys, found func(i int, o MoneyOriginal)) {
	n := len(k.Kind)
	q.Queue(moneyProbe, k.Kind, k.Acq, k.STAN, k.T, k.MTI, k.RRN).Query(func(rows pgx.Rows) error {
		holds := map[int64]MoneyOriginal{}
		origs, has := make([]MoneyOriginal, n), make([]bool, n)
		for rows.Next() {
			var (
				i int
				o MoneyOriginal
			)
			if err := rows.Scan(&i, &o.JournalID, &o.HoldID, &o.CardID, &o.Class, &o.NamesOriginal, &o.Amount, &o.Currency, &o.HoldStatus, &o.Held,
				&o.HoldCurrency, &o.UserAccount, &o.PartnerAccount, &o.Excepted, &o.PartsTaken, &o.Part, &o.ToleranceUsed); err != nil {
				return fmt.Errorf("original probe: %w", err)
			}
			switch {
			case i == 0:
				holds[o.HoldID] = o
				continue
			case i < 1 || i > n:
				return fmt.Errorf("original probe: row %d of %d", i, n)
			}
			origs[i-1], has[i-1] = o, true
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("original probe: %w", err)
		}
		for i := range origs {
			if !has[i] {
				continue
			}
			o := &origs[i]
			if o.HoldID != 0 {
				h := holds[o.HoldID]
				o.HoldStatus, o.Held, o.HoldCurrency, o.UserAccount, o.PartnerAccount = h.HoldStatus, h.Held, h.HoldCurrency, h.UserAccount, h.PartnerAccount
				o.Excepted, o.PartsTaken, o.Part, o.ToleranceUsed = h.Excepted, h.PartsTaken, h.Part, h.ToleranceUsed
			}
			found(i, *o)
		}
		return nil
	})
}
