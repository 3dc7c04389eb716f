// Package cardhost makes the issuer's decisions and runs the card
// lifecycle: programs, users and KYC, user balances, cards, locks, card
// cryptography and the authorisation decision. It knows nothing of HTTP or
// ISO 8583 bytes; money lives in package ledger.
package cardhost

import (
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/antaca/antaca/hsm"
	"github.com/antaca/antaca/ledger"
)

// Errors of the card host. The API maps them to HTTP statuses.
var (
	ErrNotFound         = errors.New("not found")
	ErrKYCNotVerified   = errors.New("user KYC is not verified")
	ErrCardRemoved      = errors.New("card is removed")
	ErrIrreversibleLock = errors.New("card has an irreversible lock")
	ErrNotLocked        = errors.New("card is not locked")
	ErrInvalidLockCode  = errors.New("lock reason code must be 1 to 8")
	ErrCardType         = errors.New("operation not allowed for this card type")
	ErrCardState        = errors.New("operation not allowed in the card's state")
	ErrNotDigitalFirst  = errors.New("program is not in Digital First")
	ErrInvalidInput     = errors.New("invalid input")
	ErrConflict         = errors.New("already exists")
)

// ActorKind says who made a change.
type ActorKind string

const (
	ActorUser     ActorKind = "user"
	ActorPartner  ActorKind = "partner"
	ActorAdmin    ActorKind = "admin"
	ActorScheme   ActorKind = "scheme"
	ActorAcquirer ActorKind = "acquirer"
	ActorSystem   ActorKind = "system"
)

// Actor is who asked for a change, recorded in the card's history.
type Actor struct {
	Kind ActorKind
	ID   string
}

// Config configures a Host. Zero fields get defaults from NewHost.
type Config struct {
	Logger *slog.Logger
	// CardYears is how long a new card is valid (default 4 years).
	CardYears int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Rand is the randomness for PANs (default crypto/rand).
	Rand io.Reader
	// BatchMax is the most authorisations decided in one database round
	// trip and one commit (default 128).
	BatchMax int
	// BatchWindow is how long a batch waits for more requests once it has
	// one (default 0: it takes what is queued; batches grow while the
	// previous ones are in the database).
	BatchWindow time.Duration
	// BatchWorkers is the number of authorisation batchers, each one
	// transaction at a time; a request goes to the batcher of its
	// program's partner account (default 4).
	BatchWorkers int
	// BatchWriters is the number of batches of one shard in the database
	// at once (default 2): a batch locks its program's partner account
	// only from its last update to its commit, so a second batch does its
	// look-up, locks and inserts meanwhile (measured on 2 cores: median of
	// 3 runs 4,913 approved/s against 4,232 with one; 3 were slower).
	BatchWriters int
	// BatchTimeout bounds one batch's database work including its commit
	// (default 1 s): past it the batch's requests fail (issuer unavailable).
	BatchTimeout time.Duration
	// Registerer receives the batch metrics; nil: none.
	Registerer prometheus.Registerer
	// Remote asks partners' back-ends for remote decisions (package
	// partner); nil: programs with a remote URL decline (1000/05).
	Remote RemoteDecider
	// Card creation limits (quota.go): cards per user per day and per
	// partner per hour, pending card jobs per user and per partner.
	// Defaults 20, 5,000, 5 and 500.
	CardsPerUserPerDay     int
	CardsPerPartnerPerHour int
	JobsPerUser            int
	JobsPerPartner         int
	// Store holds cards, users and programs (store.go); nil: the ledger's
	// CardStore on the host's pool.
	Store Store
}

// Host is the card host. It is safe for concurrent use.
type Host struct {
	pool   *ledger.Pool
	ledger *ledger.Ledger
	keys   cardKeys
	store  Store
	cfg    Config
	log    *slog.Logger
	progs  programCache

	// writes has one single-worker batcher per shard; a request goes to
	// the shard of its partner account (shardOf). Every approval of a
	// program locks its partner credit/deposit row until commit, so two
	// batches of one program could only queue on that lock: one writer per
	// row makes each commit carry everything that arrived meanwhile. A
	// batch looks its requests up, decides them and writes them in one
	// transaction of two round trips.
	writes []*batcher[*writeReq]

	// uncertain holds the requests whose commit outcome is unknown until
	// they are reconciled (uncertain.go).
	uncertain *uncertainSet
}

// NewHost returns a Host over the database pool, the ledger and the card
// crypto module (*hsm.Keys in software).
func NewHost(pool *ledger.Pool, l *ledger.Ledger, keys hsm.Module, cfg Config) *Host {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CardYears <= 0 {
		cfg.CardYears = 4
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.BatchMax <= 0 {
		cfg.BatchMax = 128
	}
	if cfg.BatchTimeout <= 0 {
		cfg.BatchTimeout = time.Second
	}
	if cfg.BatchWriters <= 0 {
		cfg.BatchWriters = 2
	}
	if cfg.BatchWorkers <= 0 {
		cfg.BatchWorkers = 4
	}
	cfg.quotaDefaults()
	if cfg.Store == nil {
		cfg.Store = ledger.NewCardStore(pool)
	}
	h := &Host{pool: pool, ledger: l, keys: cardKeys{keys}, store: cfg.Store, cfg: cfg, log: cfg.Logger, uncertain: newUncertainSet(cfg.Registerer)}
	sizes := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "antaca_auth_batch_size", Help: "Authorisations per database batch, by kind (write: look-ups, holds and journal in one transaction).",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
	}, []string{"kind"})
	seconds := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "antaca_auth_batch_seconds", Help: "Time of one database batch including its commit, by kind.",
		Buckets: prometheus.ExponentialBuckets(0.0002, 2, 14),
	}, []string{"kind"})
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(sizes, seconds)
	}
	for range cfg.BatchWorkers {
		w := newBatcher(cfg.BatchWriters, cfg.BatchMax, cfg.BatchWindow, cfg.BatchTimeout, h.flushWrites)
		w.observe(sizes.WithLabelValues("write"), seconds.WithLabelValues("write"))
		h.writes = append(h.writes, w)
	}
	return h
}

// Close stops the authorisation batchers after flushing what is queued;
// Authorize then fails. Call it after the switch has shut down.
func (h *Host) Close() {
	for _, w := range h.writes {
		w.close()
	}
	h.uncertain.close()
}

// Ledger returns the ledger the host posts to.
func (h *Host) Ledger() *ledger.Ledger { return h.ledger }

// Keys returns the host's card crypto module.
func (h *Host) Keys() hsm.Module { return h.keys.Module }

// Pool returns the database pool the host uses.
func (h *Host) Pool() *ledger.Pool { return h.pool }
