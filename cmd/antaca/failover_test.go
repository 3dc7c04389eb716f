package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/hsm"
	"github.com/antaca/antaca/internal/faulttest"
	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/ledger/pgcluster"
	"github.com/antaca/antaca/specs"
)

// haCluster is a cluster of scripts/ha.sh: etcd and PostgreSQL nodes under
// Patroni, in a directory of the test's own.
type haCluster struct {
	t      *testing.T
	dir    string
	env    []string
	offset int
	nodes  int
}

// haAvailable reports whether Patroni and etcd are installed, or can be
// (root with apt-get: scripts/ha.sh installs them).
func haAvailable() bool {
	_, errP := exec.LookPath("patroni")
	_, errE := exec.LookPath("etcd")
	if errP == nil && errE == nil {
		return true
	}
	_, errA := exec.LookPath("apt-get")
	return os.Geteuid() == 0 && errA == nil
}

// startHA starts a cluster of nodes with ports moved by offset (below
// 32768, apart from `make ha`'s) and stops it when the test ends.
func startHA(t *testing.T, offset, nodes int, strict bool) *haCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts etcd and PostgreSQL under Patroni; skipped with -short")
	}
	if !haAvailable() {
		t.Skip("patroni and etcd are not installed and cannot be (not root); apt-get install patroni etcd-server")
	}
	dir, err := pgcluster.TempDir()
	if err != nil {
		t.Fatal(err)
	}
	st := "0"
	if strict {
		st = "1"
	}
	h := &haCluster{t: t, dir: dir, offset: offset, nodes: nodes,
		env: append(os.Environ(), "HA_PORT_OFFSET="+strconv.Itoa(offset), "HA_NODES="+strconv.Itoa(nodes), "HA_STRICT="+st)}
	t.Cleanup(func() {
		h.script("stop")
		if !t.Failed() {
			os.RemoveAll(dir)
		} else {
			t.Logf("cluster logs left in %s", dir)
		}
	})
	if out, err := h.script("start"); err != nil {
		t.Fatalf("scripts/ha.sh start: %v\n%s", err, out)
	}
	return h
}

func (h *haCluster) script(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join("..", "..", "scripts", "ha.sh"), append(args, h.dir)...)
	cmd.Env = h.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (h *haCluster) url() string {
	out, err := h.script("url")
	if err != nil {
		h.t.Fatalf("scripts/ha.sh url: %v %s", err, out)
	}
	return strings.TrimSpace(out)
}

// migrated connects to the cluster's primary, migrates it and returns the
// pool (closed when the test ends) and a fresh set of keys.
func (h *haCluster) migrated() (*pgxpool.Pool, *hsm.Keys) {
	h.t.Helper()
	pool, err := newPool(h.t.Context(), h.url())
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(pool.Close)
	if _, err := ledger.Migrate(h.t.Context(), pool); err != nil {
		h.t.Fatal(err)
	}
	keys, err := hsm.GenerateKeys()
	if err != nil {
		h.t.Fatal(err)
	}
	return pool, keys
}

// primary returns the node (1-based) whose Patroni answers 200 on
// /primary, or 0.
func (h *haCluster) primary() int { return h.answering("/primary") }

// syncStandby returns the node whose Patroni answers 200 on /sync, or 0.
func (h *haCluster) syncStandby() int { return h.answering("/sync") }

// answering returns the first node whose Patroni REST API answers 200 on
// path, or 0.
func (h *haCluster) answering(path string) int {
	c := &http.Client{Timeout: time.Second}
	for i := 1; i <= h.nodes; i++ {
		r, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d%s", 18007+h.offset+i, path))
		if err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return i
			}
		}
	}
	return 0
}

// postmaster returns the pid of node i's postmaster.
func (h *haCluster) postmaster(i int) int {
	b, err := os.ReadFile(filepath.Join(h.dir, fmt.Sprintf("node%d", i), "data", "postmaster.pid"))
	if err != nil {
		h.t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		h.t.Fatal(err)
	}
	return pid
}

// TestFailover (`make failover`): the switch under load on the replicated
// ledger; the primary's postmaster is killed (SIGKILL); Patroni promotes
// the synchronous standby and the load goes on through the same switch,
// whose pool finds the new primary. Every approval the switch answered is
// on the new primary, and `antaca ledger verify` there is clean. Prints
// the failover: line.
func TestFailover(t *testing.T) {
	h := startHA(t, 10000, 2, false)
	dsn := h.url()
	ctx := t.Context()
	pool, keys := h.migrated()
	const clients, inflight = 4, 4
	pans, expiries := killTestData(t, pool, keys, clients)
	st := newStack(t, dsn, keys, nil)
	spec, err := specs.ISOSpec("iso2003")
	if err != nil {
		t.Fatal(err)
	}
	approved, _ := specs.ActionCode("iso2003", string(cardhost.Approved))

	type shot struct {
		stan      int
		sent, got time.Time
		code      string
		err       error
	}
	var (
		mu    sync.Mutex
		shots []*shot
		stan  int
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	for i := range clients {
		c := isoClient(t, st.iso)
		for range inflight {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					mu.Lock()
					stan++
					s := &shot{stan: stan, sent: time.Now()}
					shots = append(shots, s)
					mu.Unlock()
					resp, err := c.Send(authRequest(t, spec, s.stan, pans[i], expiries[i]))
					mu.Lock()
					s.got, s.err = time.Now(), err
					if err == nil {
						s.code, _ = resp.GetString(39)
					}
					mu.Unlock()
					if err != nil || s.code != approved {
						time.Sleep(20 * time.Millisecond) // an acquirer does not spin on declines
					}
				}
			})
		}
	}
	time.Sleep(2 * time.Second)
	old := h.primary()
	if old == 0 {
		t.Fatal("no primary before the kill")
	}
	killed := time.Now()
	if err := syscall.Kill(h.postmaster(old), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Load goes on until approvals have been back for 2 s (at most 90 s).
	deadline := killed.Add(90 * time.Second)
	var firstApproval time.Time
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		mu.Lock()
		for _, s := range shots {
			if s.code == approved && s.sent.After(killed) && (firstApproval.IsZero() || s.got.Before(firstApproval)) {
				firstApproval = s.got
			}
		}
		mu.Unlock()
		if !firstApproval.IsZero() && time.Since(firstApproval) > 2*time.Second {
			break
		}
	}
	close(stop)
	wg.Wait()
	promoted := h.primary()
	// The API's pool found the new primary too.
	if r, err := httpClient(keys, "127.0.0.1", nil).Get(st.apiURL + "/healthz"); err != nil || r.StatusCode != http.StatusOK {
		t.Errorf("API /healthz after the failover: %v %v, want 200", r, err)
	} else {
		r.Body.Close()
	}

	// What the new primary holds.
	journaled := map[string]bool{}
	rows, err := pool.Query(ctx, `SELECT stan FROM auth_journal WHERE reason = 'approved' AND hold_id IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		journaled[s] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var nApproved, missing, unanswered, unavailable, other int
	codes := map[string]int{}
	for _, s := range shots {
		switch {
		case s.err != nil || s.got.IsZero():
			unanswered++
		case s.code == approved:
			nApproved++
			if !journaled[fmt.Sprintf("%012d", s.stan)] {
				missing++
			}
		default:
			codes[s.code]++
			if s.code == "9112" || s.code == "91" {
				unavailable++
			} else {
				other++
			}
		}
	}
	var out bytes.Buffer
	verdict := "ok"
	if err := verify(ctx, []string{"-database-url", dsn, "-log-level", "error"}, &out); err != nil {
		verdict = "failed"
		t.Errorf("ledger verify on the new primary: %v\n%s", err, out.String())
	}
	firstMS := int64(-1)
	if !firstApproval.IsZero() {
		firstMS = firstApproval.Sub(killed).Milliseconds()
	}
	line := fmt.Sprintf("failover: approved=%d approved_missing=%d unanswered=%d first_approval_after_ms=%d verify=%s", nApproved, missing, unanswered, firstMS, verdict)
	fmt.Println(line)
	t.Logf("%s (primary node%d killed, node%d promoted; %d answered issuer unavailable meanwhile, other answers %v)", line, old, promoted, unavailable, codes)
	switch {
	case missing != 0:
		t.Fatalf("%d approvals answered by the switch are not on the new primary", missing)
	case firstApproval.IsZero():
		t.Fatal("no approval after the failover within 90 s")
	case promoted == 0 || promoted == old:
		t.Fatalf("primary after the kill: node%d, want the other node (was node%d)", promoted, old)
	case other != 0:
		t.Fatalf("answers other than approved and issuer unavailable: %v", codes)
	}
	if verdict == "ok" {
		faulttest.Record(t, faulttest.Row{Area: "ledger", Fault: "database primary's postmaster killed (SIGKILL) under load; Patroni with a synchronous standby, etcd, two PostgreSQL 15 nodes",
			Behaviour: fmt.Sprintf("Patroni promoted the standby; the switch's pool found it (multi-host DSN, target_session_attrs=read-write): first approval %d ms after the kill; %d requests answered issuer unavailable meanwhile, %d unanswered; %d approvals, none missing on the new primary",
				firstMS, unavailable, unanswered, nApproved),
			Verify: "`antaca ledger verify` on the new primary: clean"})
	}
}
