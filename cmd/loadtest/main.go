// Command loadtest drives an Antaca switch with ISO 8583 load and reports
// throughput, latency and answers by action code.
//
//	loadtest -addr 127.0.0.1:8583 -profile iso2003 -cards cards.json -conns 8 -duration 20s
//	loadtest -addr 127.0.0.1:8583 -pan 5399990000000000 -expiry 3012 -cvc2 123 -n 1
//	loadtest bench -cards 100000 -duration 20s
//
// The bench form starts a throwaway durable PostgreSQL, creates the cards,
// runs pgbench as the reference, then the switch in this process and the
// load against it, prints the bench line and verifies the ledger.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/antaca/antaca/internal/gctune"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/antaca/antaca/loadtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

// loadFlags registers the flags of a load run on fs.
func loadFlags(fs *flag.FlagSet, c *loadtest.Config) (mix *string, quiet *bool) {
	fs.StringVar(&c.Profile, "profile", loadtest.ProfileISO2003, "iso2003 or iso87")
	fs.IntVar(&c.Conns, "conns", 8, "connections")
	fs.Float64Var(&c.Rate, "rate", 0, "open-loop: requests per second over all connections; 0: closed-loop")
	fs.IntVar(&c.InFlight, "inflight", 16, "closed-loop: requests in flight per connection")
	fs.DurationVar(&c.Duration, "duration", 0, "how long to send (default 10s when -n is not given)")
	fs.Int64Var(&c.Count, "n", 0, "how many requests to send")
	fs.DurationVar(&c.Timeout, "timeout", 5*time.Second, "how long a request waits for its answer")
	fs.StringVar(&c.Currency, "currency", "978", "DE49, ISO 4217 numeric")
	fs.Int64Var(&c.Amount, "amount", 1000, "DE4, minor units")
	fs.StringVar(&c.AcquirerID, "acquirer", "123456", "DE32 acquirer id (digits)")
	fs.Uint64Var(&c.Seed, "seed", 0, "seed of the card and kind choice (default: clock)")
	mix = fs.String("mix", "approve=1", "weights: approve, funds, locked, cvc2, reversal, echo (e.g. approve=90,funds=2,locked=2,cvc2=2,reversal=2,echo=2), "+
		"and in iso2003 expired, reversal_partial, complete, complete_partial, complete_over, refund, advice, balance; or the preset realistic (docs/operations.md, Load mixes)")
	quiet = fs.Bool("quiet", false, "no progress line")
	fs.DurationVar(&c.ReportEvery, "report-every", 0, "split the report into intervals this long (e.g. 1m): answers/s, approved/s, money messages/s and p99 of each, and the last against the first")
	return mix, quiet
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	gctune.Apply()
	if len(args) > 0 && args[0] == "bench" {
		return bench(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "webhook-receiver" {
		// Started by bench -webhook: the partners' receiver, at nice 19.
		loadtest.NiceProcess()
		return loadtest.WebhookReceiver(ctx, os.Stdin, stdout)
	}
	var c loadtest.Config
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:8583", "switch address host:port")
	mix, quiet := loadFlags(fs, &c)
	cardsPath := fs.String("cards", "", "card set: JSON list of {pan, expiry, cvc2, kind: ok|poor|locked}")
	pan := fs.String("pan", "", "a single ok card's PAN (instead of -cards)")
	expiry := fs.String("expiry", "", "its expiry, YYMM")
	cvc2 := fs.String("cvc2", "", "its CVC2")
	asJSON := fs.Bool("json", false, "print the report as one JSON object")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if c.Mix, err = loadtest.ParseMix(*mix); err != nil {
		return err
	}
	switch {
	case *cardsPath != "":
		if c.Cards, err = loadtest.LoadCards(*cardsPath); err != nil {
			return err
		}
	case *pan != "":
		c.Cards = []loadtest.Card{{PAN: *pan, Expiry: *expiry, CVC2: *cvc2, Kind: loadtest.KindOK}}
	default:
		return errors.New("give -cards FILE or -pan (with -expiry, -cvc2)")
	}
	if c.Duration == 0 && c.Count == 0 {
		c.Duration = 10 * time.Second
	}
	if !*quiet {
		c.Progress = stderr
	}
	rep, err := loadtest.Run(ctx, c)
	if err != nil {
		return err
	}
	if *asJSON {
		return rep.WriteJSON(stdout)
	}
	return rep.WriteText(stdout)
}

func bench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c loadtest.BenchConfig
	fs := flag.NewFlagSet("loadtest bench", flag.ContinueOnError)
	mix, quiet := loadFlags(fs, &c.Load)
	fs.IntVar(&c.Cards, "cards", 100_000, "cards to create (1% poor, 1% locked, 1% expired)")
	fs.IntVar(&c.PoolSize, "pool", 32, "database connections of the switch")
	fs.DurationVar(&c.MixedDuration, "mixed-duration", 0, "how long the realistic mix runs after the approvals (default -duration; negative skips it)")
	fs.DurationVar(&c.PgbenchTime, "pgbench-time", 10*time.Second, "pgbench -T; negative skips pgbench")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of the load phase to this file")
	fs.BoolVar(&c.Webhook, "webhook", false, "register an HTTPS receiver (a process of its own at nice 19) of every authorisation event per partner, deliver to it during the load and wait for the backlog after it")
	fs.StringVar(&c.CardsOut, "cards-out", "", "write the card set (test cards) to this file")
	noPrewarm := fs.Bool("no-prewarm", false, "do not load cards, accounts and their look-up indexes into shared_buffers (pg_prewarm) before the load")
	fs.DurationVar(&c.Warmup, "warmup", 0, "run the approvals this long before the measured load, unmeasured (default 30s per million cards; negative: none)")
	dbWarm := fs.Int("db-warm", -1, "the switch's warm start, as antaca's -db-warm: connections opened and readied before it listens; negative: all of -pool; 0: none (a cold start)")
	fs.BoolVar(&c.Waits, "waits", false, "sample Postgres' wait events every 10 ms during the approvals and print their counts")
	fs.BoolVar(&c.Explain, "explain", false, "after the approvals, print the lock statement's plan with buffer counts (EXPLAIN ANALYZE, BUFFERS) and the sizes of cards and accounts")
	fs.Func("pg", "a server setting of the throwaway cluster, name=value (repeatable)", func(s string) error {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return fmt.Errorf("want name=value, got %q", s)
		}
		if c.Settings == nil {
			c.Settings = map[string]string{}
		}
		c.Settings[k] = v
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	c.NoPrewarm = *noPrewarm
	switch {
	case *dbWarm == 0:
		c.DBWarm = -1
	case *dbWarm > 0:
		c.DBWarm = *dbWarm
	}
	var err error
	if c.Load.Mix, err = loadtest.ParseMix(*mix); err != nil {
		return err
	}
	if c.Load.Duration == 0 && c.Load.Count == 0 {
		c.Load.Duration = 20 * time.Second
	}
	if !*quiet {
		c.Load.Progress = stderr
	}
	c.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	if c.Webhook {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		c.ReceiverCommand = []string{exe, "webhook-receiver"}
	}
	res, err := loadtest.Bench(ctx, c)
	if err != nil {
		return err
	}
	res.Report.WriteText(stderr)
	fmt.Fprintf(stderr, "postgres: %s\n", res.Server)
	fmt.Fprintf(stderr, "cpu during load: this process (switch+card host+load generator) %.1f s, postgres %.1f s, over %.1f s on %d cores; holds placed %d\n",
		res.ProcessCPU, res.PostgresCPU, res.LoadSeconds, numCPU(), res.HoldsPlaced)
	if b := res.Batches; b.Batches > 0 {
		fmt.Fprintf(stderr, "write batches during load: %d, %.1f requests and %.2f ms each (commit included)\n",
			b.Batches, b.Requests/float64(b.Batches), 1000*b.Seconds/float64(b.Batches))
	}
	if w, n := res.Writes, float64(max(res.Report.Approved, 1)); w.WALRecords > 0 {
		hot := 0.0
		if w.AccountUpdates > 0 {
			hot = 100 * float64(w.AccountHOTUpdates) / float64(w.AccountUpdates)
		}
		fmt.Fprintf(stderr, "postgres writes during load: WAL %.1f MB (%.0f bytes, %.1f records per approval), full-page images %d, checkpoints %d; accounts updated %d times, %.0f%% HOT\n",
			float64(w.WALBytes)/1e6, float64(w.WALBytes)/n, float64(w.WALRecords)/n, w.WALFullPages, w.Checkpoints, w.AccountUpdates, hot)
	}
	if n := float64(max(res.Report.Answered, 1)); res.Mallocs > 0 {
		fmt.Fprintf(stderr, "go heap during load: %.0f allocations and %.0f bytes per answer, %d collections\n",
			float64(res.Mallocs)/n, float64(res.AllocBytes)/n, res.GCs)
	}
	printGrowth(stderr, "during load, bytes per approval", res.JournalGrowth, res.Report.Approved)
	printStatements(stderr, "during load", res.Statements)
	printWebhooks(stderr, "the approvals", res.Webhooks)
	fmt.Fprint(stderr, res.Explain)
	if len(res.Waits) > 0 {
		fmt.Fprint(stderr, "postgres wait events during the approvals (samples every 10 ms; cpu: active, not waiting):")
		for _, w := range res.Waits[:min(len(res.Waits), 12)] {
			fmt.Fprintf(stderr, " %s %s %d;", w.Backend, w.Event, w.Samples)
		}
		fmt.Fprintln(stderr)
	}
	if res.Mixed != nil {
		fmt.Fprintln(stderr, "realistic mix, after the approvals:")
		res.Mixed.WriteText(stderr)
		pg := "n/a (a backend with CPU time exited)"
		if res.MixedPostgresCPU >= 0 {
			pg = fmt.Sprintf("%.1f s", res.MixedPostgresCPU)
		}
		fmt.Fprintf(stderr, "cpu during the realistic mix: this process %.1f s, postgres %s, over %.1f s\n",
			res.MixedProcessCPU, pg, res.Mixed.Seconds)
		printGrowth(stderr, "during the realistic mix, bytes per money message", res.MixedJournalGrowth, res.Mixed.MoneyAnswered)
		printStatements(stderr, "during the realistic mix", res.MixedStatements)
		printWebhooks(stderr, "the realistic mix", res.MixedWebhooks)
	}
	if res.Webhooks != nil {
		fmt.Fprintf(stderr, "webhooks: the receiver process (nice 19, not in the CPU above) used %.1f s of CPU over the whole bench\n", res.ReceiverCPU)
	}
	for _, v := range res.Violations {
		fmt.Fprintln(stderr, "ledger verify:", v.String())
	}
	fmt.Fprintln(stdout, res.Line())
	// With -report-every: the realistic mix's first and last interval (the
	// approvals' where the mix was skipped), for scripts/decay.sh.
	last := res.Report
	if res.Mixed != nil {
		last = res.Mixed
	}
	if line := last.DecayLine(); line != "" {
		fmt.Fprintln(stdout, line)
	}
	if len(res.Violations) > 0 {
		return fmt.Errorf("%w: %d", loadtest.ErrLedgerNotClean, len(res.Violations))
	}
	fmt.Fprintln(stderr, "ledger verify: clean")
	return nil
}

// printWebhooks says how many events the receiver had at the end of a
// phase's load and how long the rest took.
func printWebhooks(w io.Writer, phase string, l *loadtest.WebhookLag) {
	if l == nil {
		return
	}
	fmt.Fprintf(w, "webhooks after %s: %d of %d events received when the load ended (%.0f%%), all %.1f s later\n",
		phase, l.AtEnd, l.Events, 100*float64(l.AtEnd)/float64(max(l.Events, 1)), l.Drain.Seconds())
}

// printStatements lists the statements that took most of Postgres' time.
func printStatements(w io.Writer, phase string, sts []loadtest.Statement) {
	if len(sts) == 0 {
		return
	}
	fmt.Fprintf(w, "postgres time by statement %s (pg_stat_statements, nested included):\n", phase)
	for _, st := range sts {
		fmt.Fprintf(w, "  %9.0f ms %8d calls %7.3f ms/call %8d plans %6.0f ms planning  %s\n", st.TotalMS, st.Calls, st.MeanMS, st.Plans, st.PlanMS, st.Query)
		if n := float64(max(st.Calls, 1)); st.Hit+st.Read+st.WALBytes > 0 {
			fmt.Fprintf(w, "             per call: blocks hit %.1f read %.1f dirtied %.1f written %.1f, WAL %.0f bytes, full-page images %.2f\n",
				float64(st.Hit)/n, float64(st.Read)/n, float64(st.Dirtied)/n, float64(st.Written)/n, float64(st.WALBytes)/n, float64(st.WALFullPages)/n)
		}
	}
}

func numCPU() int { return runtime.NumCPU() }

// printGrowth prints what the journal tables grew by, per message counted
// in n (docs/operations.md, "Journal growth").
func printGrowth(w io.Writer, what string, growth map[string]int64, n int64) {
	if len(growth) == 0 || n <= 0 {
		return
	}
	fmt.Fprintf(w, "journal growth %s (tables with their indexes):", what)
	var total int64
	for _, t := range []string{"auth_journal", "holds", "postings", "entries"} {
		fmt.Fprintf(w, " %s %.0f", t, float64(growth[t])/float64(n))
		total += growth[t]
	}
	fmt.Fprintf(w, ", total %.0f\n", float64(total)/float64(n))
}
