package ledger

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The transactions of the card host's hot path: a batch's pipelines and a
// single message's transaction. The card host passes them to the ledger's
// functions and runs no statement on them itself.

// Tx is a transaction the card host passes to the ledger's functions.
type Tx = pgx.Tx

// Pool is the database pool the card host's transactions begin on.
type Pool = pgxpool.Pool

// Batch is a pipeline of statements sent in one round trip, their results
// read when it is closed.
type Batch = pgx.Batch

// BeginFunc runs fn in a transaction of db (a pool, or a transaction: then
// under a savepoint), committed when fn returns nil, else rolled back.
func BeginFunc(ctx context.Context, db interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}, fn func(Tx) error) error {
	return pgx.BeginFunc(ctx, db, fn)
}

// NewTxBatch returns a pipeline that begins a transaction and sets
// GenericPlans, for SendBegin.
func NewTxBatch() *Batch {
	q := &pgx.Batch{}
	q.BeginTx(pgx.TxOptions{})
	q.Queue(GenericPlans)
	return q
}

// BatchTx is a transaction begun by a pipeline (SendBegin) on a connection
// of its own.
type BatchTx struct {
	conn *pgxpool.Conn
	tx   pgx.Tx
}

// SendBegin sends q (from NewTxBatch) on a connection of pool, in one
// round trip, and returns its transaction once every result of q is read.
// On error the transaction is rolled back and the connection released;
// else the caller ends it with End.
func SendBegin(ctx context.Context, pool *pgxpool.Pool, q *Batch) (*BatchTx, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	br := conn.SendBatch(ctx, q)
	tx := br.Tx()
	if err := br.Close(); err != nil {
		tx.Rollback(context.WithoutCancel(ctx))
		conn.Release()
		return nil, err
	}
	return &BatchTx{conn: conn, tx: tx}, nil
}

// Tx is t's transaction.
func (t *BatchTx) Tx() Tx { return t.tx }

// Send sends q in t in one round trip and reads its results.
func (t *BatchTx) Send(ctx context.Context, q *Batch) error { return SendBatch(ctx, t.tx, q) }

// SendBatch sends q in tx in one round trip and reads its results.
func SendBatch(ctx context.Context, tx Tx, q *Batch) error { return tx.SendBatch(ctx, q).Close() }

// Commit commits t (one round trip).
func (t *BatchTx) Commit(ctx context.Context) error {
	_, err := t.tx.Exec(ctx, "COMMIT")
	return err
}

// End rolls t back unless committed, and releases its connection.
func (t *BatchTx) End(ctx context.Context, committed bool) {
	if !committed {
		t.tx.Rollback(context.WithoutCancel(ctx))
	}
	t.conn.Release()
}

// QueueCommit queues COMMIT on q: the pipeline ends the transaction.
func QueueCommit(q *Batch) { q.Queue("COMMIT") }

// ServerError returns the SQLSTATE of err when the database server sent
// it (as opposed to a connection or context error).
func ServerError(err error) (code string, ok bool) {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code, true
	}
	return "", false
}
