package cardhost

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/antaca/antaca/ledger"
)

// lookupReq is one authorisation's read: its card by PAN lookup hash and
// any journaled answer to the same request (a duplicate).
type lookupReq struct {
	panLookup []byte
	r         *AuthRequest

	card   *Card     // nil: no card with this PAN
	stored *Decision // non-nil: the request was answered before
}

// lookupBatch reads the cards and earlier answers of many requests in one
// round trip.
const lookupBatch = `SELECT x.i, c.id, c.program_id, c.user_id, c.account_id, c.type, c.state, c.lock_code, c.expiry,
	c.pan_first6, c.pan_last4, c.cvc_generation, c.pvv, c.pin_tries, c.version, c.created_at,
	j.reason, j.approval_code, j.hold_id, j.available, j.available_currency
	FROM unnest($1::bytea[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS x(lookup, acq, stan, tt, rrn, mti, i)
	LEFT JOIN cards c ON c.pan_lookup = x.lookup
	LEFT JOIN auth_journal j ON j.acquirer_id = x.acq AND j.stan = x.stan AND j.transmission_time = x.tt AND j.rrn = x.rrn AND j.mti = x.mti`

func (h *Host) flushLookups(ctx context.Context, items []*batchItem[*lookupReq]) {
	n := len(items)
	lookups := make([][]byte, n)
	acq, stan, tt, rrn, mti := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, it := range items {
		r := it.in.r
		lookups[i] = it.in.panLookup
		acq[i], stan[i], tt[i], rrn[i], mti[i] = r.AcquirerID, r.STAN, r.TransmissionTime, r.RRN, foldRepeat(r.MTI)
	}
	err := func() error {
		// QueryExecModeExec: planned afresh each call. A cached generic
		// plan of this join was measured to double Postgres' CPU under
		// load (bench: 1,800-2,000 against 3,600-4,400 approved/s).
		rows, err := h.pool.Query(ctx, lookupBatch, pgx.QueryExecModeExec, lookups, acq, stan, tt, rrn, mti)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				i                                 int
				id, prog, user, acc, version      *int64
				typ, state, expiry, first6, last4 *string
				pvv                               *string
				lock                              *int16
				gen, tries                        *int32
				created                           *time.Time
				reason, approval, availCcy        *string
				holdID, avail                     *int64
			)
			if err := rows.Scan(&i, &id, &prog, &user, &acc, &typ, &state, &lock, &expiry, &first6, &last4, &gen, &pvv, &tries, &version, &created,
				&reason, &approval, &holdID, &avail, &availCcy); err != nil {
				return err
			}
			q := items[i-1].in
			if id != nil {
				q.card = &Card{ID: *id, ProgramID: *prog, UserID: *user, AccountID: *acc, Type: CardType(*typ), State: CardState(*state),
					LockCode: LockCode(*lock), Expiry: *expiry, PANFirst6: *first6, PANLast4: *last4, CVCGeneration: int(*gen),
					PVV: *pvv, PINTries: int(*tries), Version: *version}
				if created != nil {
					q.card.CreatedAt = *created
				}
			}
			if reason != nil {
				d := Decision{Reason: Reason(*reason), ApprovalCode: *approval, Duplicate: true, Currency: *availCcy}
				if holdID != nil {
					d.HoldID = *holdID
				}
				if avail != nil {
					d.Available, d.HasAvailable = *avail, true
				}
				q.stored = &d
			}
		}
		return rows.Err()
	}()
	if err != nil {
		err = fmt.Errorf("card lookup: %w", err)
	}
	for _, it := range items {
		it.reply <- err
	}
}

// writeReq is one authorisation's write: a hold to place (nil spec: a
// journal row only) and its journal row, committed with the batch.
type writeReq struct {
	spec      *ledger.HoldSpec
	capture   bool // financial (x200): capture the hold at once
	pin       *pinChange
	j         journal
	prog      *Program
	decision  Decision // set by the flush
	newHold   bool     // the flush placed a new hold (not a duplicate's)
	duplicate bool     // the journal key existed: answer with the stored decision
}

// flushWrites places the holds of many requests, captures financial ones,
// and writes every journal row, all in one transaction: one commit for the
// batch. A request's decline does not affect the others; a database error
// fails the whole batch and nothing of it is committed.
func (h *Host) flushWrites(ctx context.Context, items []*batchItem[*writeReq]) {
	err := h.writeBatch(ctx, items)
	if err != nil {
		err = fmt.Errorf("authorisation batch of %d: %w", len(items), err)
	}
	for _, it := range items {
		it.reply <- err
	}
}

// writeBatch is flushWrites' transaction, sent as two pipelines: BEGIN and
// the locks of the batch's accounts; then, once the holds are decided, the
// holds, the journal rows and COMMIT. Financial captures and PIN counts,
// which depend on what the journal insert reports, take a third round
// trip when the batch has any.
func (h *Host) writeBatch(ctx context.Context, items []*batchItem[*writeReq]) error {
	conn, err := h.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	var specs []ledger.HoldSpec
	var idx []int
	tail := false
	for i, it := range items {
		if it.in.spec != nil {
			specs = append(specs, *it.in.spec)
			idx = append(idx, i)
		}
		tail = tail || it.in.capture || it.in.pin != nil
	}
	hb := h.ledger.NewHoldBatch(specs)
	var q pgx.Batch
	q.BeginTx(pgx.TxOptions{})
	if len(specs) > 0 {
		hb.QueueLock(&q)
	}
	br := conn.SendBatch(ctx, &q)
	tx := br.Tx()
	if err := br.Close(); err != nil {
		tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	committed := false
	defer func() {
		if !committed {
			tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	var inserted []bool
	for {
		if len(specs) > 0 {
			for k, res := range hb.Decide() {
				h.applyHoldResult(items[idx[k]].in, res)
			}
		}
		var w pgx.Batch
		hb.QueueWrite(&w)
		rows := make([]journal, len(items))
		for i, it := range items {
			rows[i] = it.in.j
		}
		inserted = queueJournals(&w, rows)
		if !tail {
			if err := beforeCommit(ctx); err != nil {
				return err
			}
			w.Queue("COMMIT")
		}
		err := tx.SendBatch(ctx, &w).Close()
		if err == nil {
			committed = !tail
			break
		}
		if retry, err := hb.Retry(ctx, tx, err); !retry {
			return err
		}
	}
	for i, it := range items {
		if !inserted[i] {
			it.in.duplicate = true
		}
	}
	if tail {
		for i, it := range items {
			w := it.in
			if !inserted[i] {
				continue
			}
			if w.capture && w.newHold {
				if _, err := h.ledger.CaptureTx(ctx, tx, w.j.holdID, w.spec.Amount, false, "capture:"+w.spec.Ref); err != nil {
					return err
				}
			}
			if pc := w.pin; pc != nil {
				if err := recordPINChange(ctx, tx, w.j.cardID, *pc); err != nil {
					return err
				}
			}
		}
		if err := beforeCommit(ctx); err != nil {
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
		committed = true
	}
	return nil
}

// applyHoldResult turns a ledger result into the request's decision and
// journal row (again from scratch when the batch is decided again).
func (h *Host) applyHoldResult(w *writeReq, res ledger.HoldResult) {
	ccy := w.prog.CurrencyNumeric
	avail := res.Available
	w.j.approval, w.j.holdID, w.j.detail, w.j.available, w.j.availCcy = "", 0, "", nil, ""
	w.newHold = res.Err == nil && !res.Duplicate
	switch {
	case res.Err == nil:
		w.decision = Decision{Reason: Approved, ApprovalCode: approvalCode(w.j.req), Available: avail, Currency: ccy, HasAvailable: true, HoldID: res.Hold.ID}
		w.j.reason, w.j.approval, w.j.holdID = Approved, w.decision.ApprovalCode, res.Hold.ID
	case errors.Is(res.Err, ledger.ErrInsufficientFunds), errors.Is(res.Err, ledger.ErrInsufficientPartnerFunds):
		reason := InsufficientFunds
		if errors.Is(res.Err, ledger.ErrInsufficientPartnerFunds) {
			reason = InsufficientPartnerFunds
		}
		w.decision = Decision{Reason: reason, Available: avail, Currency: ccy, HasAvailable: true}
		w.j.reason = reason
	default:
		// The balance is blocked or closed, or the accounts do not fit:
		// not permitted to the cardholder; the reason is journaled.
		w.decision = Decision{Reason: NotPermitted}
		w.j.reason, w.j.detail = NotPermitted, res.Err.Error()
		return
	}
	w.j.available, w.j.availCcy = &avail, ccy
}

// insertJournals writes many journal rows in one statement; rows whose
// request key exists already are skipped (duplicates).
const insertJournals = `INSERT INTO auth_journal (profile, mti, class, acquirer_id, stan, transmission_time, rrn,
	card_id, pan_enc, pan_masked, processing_code, amount, currency, billing_amount, billing_currency, merchant,
	reason, approval_code, hold_id, available, available_currency, original_id, detail, local_time)
	SELECT profile, mti, class, acq, stan, tt, rrn, NULLIF(card, 0), pan, masked, proc, amount, ccy, bamount, bccy, merchant,
		reason, approval, NULLIF(hold, 0), avail, availccy, NULLIF(orig, 0), detail, lt
	FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::bytea[],
		$10::text[], $11::text[], $12::bigint[], $13::text[], $14::bigint[], $15::text[], $16::text[], $17::text[], $18::text[],
		$19::bigint[], $20::bigint[], $21::text[], $22::bigint[], $23::text[], $24::text[])
		AS x(profile, mti, class, acq, stan, tt, rrn, card, pan, masked, proc, amount, ccy, bamount, bccy, merchant,
			reason, approval, hold, avail, availccy, orig, detail, lt)
	ON CONFLICT (acquirer_id, stan, transmission_time, rrn, mti) DO NOTHING
	RETURNING acquirer_id, stan, transmission_time, rrn, mti`

// queueJournals queues the insert of rows on q and returns, per row,
// whether it was inserted, filled in when q has run (false: the request
// was journaled before: a duplicate).
func queueJournals(q *pgx.Batch, rows []journal) []bool {
	n := len(rows)
	var (
		profile, mti, acq, stan, tt, rrn, masked, proc, ccy, bccy, merchant = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		reason, approval, availCcy, detail, lt                              = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		class                                                               = make([]int32, n)
		card, amount, bamount, hold, orig                                   = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		pan                                                                 = make([][]byte, n)
		avail                                                               = make([]*int64, n)
	)
	keys := make(map[string]int, n)
	for i, j := range rows {
		r := j.req
		profile[i], mti[i], class[i], acq[i], stan[i], tt[i], rrn[i] = r.Profile, foldRepeat(r.MTI), int32(r.Class), r.AcquirerID, r.STAN, r.TransmissionTime, r.RRN
		card[i], pan[i], proc[i], amount[i], ccy[i], bamount[i], bccy[i], merchant[i] = j.cardID, j.panEnc, r.ProcessingCode, r.Amount, r.Currency, r.BillingAmount, r.BillingCurrency, r.MerchantName
		if r.PAN != "" {
			masked[i] = MaskPAN(r.PAN)
		}
		reason[i], approval[i], hold[i], avail[i], availCcy[i], orig[i], detail[i], lt[i] = string(j.reason), j.approval, j.holdID, j.available, j.availCcy, j.originalID, j.detail, r.LocalTime
		k := acq[i] + "\x00" + stan[i] + "\x00" + tt[i] + "\x00" + rrn[i] + "\x00" + mti[i]
		if _, seen := keys[k]; !seen {
			keys[k] = i
		}
	}
	inserted := make([]bool, n)
	q.Queue(insertJournals, profile, mti, class, acq, stan, tt, rrn, card, pan, masked, proc, amount, ccy,
		bamount, bccy, merchant, reason, approval, hold, avail, availCcy, orig, detail, lt).Query(func(res pgx.Rows) error {
		for res.Next() {
			var a, s, t, r, m string
			if err := res.Scan(&a, &s, &t, &r, &m); err != nil {
				return fmt.Errorf("journal: %w", err)
			}
			if i, ok := keys[a+"\x00"+s+"\x00"+t+"\x00"+r+"\x00"+m]; ok {
				inserted[i] = true
			}
		}
		if err := res.Err(); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		return nil
	})
	return inserted
}

// pinChange is what a verified PIN does to a card: a right PIN resets the
// wrong-PIN count, a wrong one adds to it, and the third wrong one in a row
// locks the card from outside with code 6.
type pinChange struct {
	right bool
}

// recordPINChange applies a verified PIN to the card's wrong-PIN count in
// the batch's transaction. The count is changed relative to the row, not
// set from the value the decision read, so concurrent requests of one
// card each count; the lock (unless an irreversible one stands) and its
// history entry are written by the request that reaches three.
func recordPINChange(ctx context.Context, tx pgx.Tx, cardID int64, pc pinChange) error {
	const update = `WITH old AS (SELECT id, lock_code FROM cards WHERE id = $1 FOR UPDATE)
		UPDATE cards c SET pin_tries = CASE WHEN $2 THEN 0 ELSE c.pin_tries + 1 END,
			lock_code = CASE WHEN NOT $2 AND c.pin_tries + 1 >= $3 AND c.lock_code NOT IN (1, 2, 5, 8) THEN 6 ELSE c.lock_code END,
			version = c.version + 1, updated_at = now()
		FROM old WHERE c.id = old.id
		RETURNING old.lock_code, c.lock_code`
	var before, after int16
	if err := tx.QueryRow(ctx, update, cardID, pc.right, MaxPINTries).Scan(&before, &after); err != nil {
		return fmt.Errorf("pin tries of card %d: %w", cardID, err)
	}
	if before != after && LockCode(after) == LockPINTriesExceeded {
		if err := recordEvent(ctx, tx, cardID, Actor{Kind: ActorSystem, ID: "switch"}, string(ActLockOutside), LockPINTriesExceeded, "PIN tries exceeded"); err != nil {
			return fmt.Errorf("pin lock of card %d: %w", cardID, err)
		}
	}
	return nil
}
