package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/internal/faulttest"
	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/specs"
)

// gauge reads a gauge of reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.Metric) > 0 {
			return mf.Metric[0].GetGauge().GetValue()
		}
	}
	return -1
}

// killNode kills node i as a lost machine would: the process in its pid
// file and everything under it (runuser when root, Patroni), then its
// postmaster.
func (h *haCluster) killNode(i int) {
	h.t.Helper()
	b, err := os.ReadFile(filepath.Join(h.dir, fmt.Sprintf("node%d.pid", i)))
	if err != nil {
		h.t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	postmaster := h.postmaster(i)
	tree := []int{pid}
	for k := 0; k < len(tree); k++ {
		out, _ := exec.Command("pgrep", "-P", strconv.Itoa(tree[k])).Output()
		for _, f := range strings.Fields(string(out)) {
			if c, err := strconv.Atoi(f); err == nil && c != postmaster {
				tree = append(tree, c)
			}
		}
	}
	for k := len(tree) - 1; k >= 0; k-- { // Patroni before runuser
		syscall.Kill(tree[k], syscall.SIGKILL)
	}
	syscall.Kill(postmaster, syscall.SIGKILL)
}

// approveUntil sends authorisations through the switch one after the
// other until cond holds after an approval, or the time is up; it returns
// the first approval's time and the answers counted.
func approveUntil(t *testing.T, iso string, card int, pans, expiries []string, stan *int, limit time.Duration, cond func() bool) (time.Time, map[string]int) {
	spec, _ := specs.ISOSpec("iso2003")
	approved, _ := specs.ActionCode("iso2003", string(cardhost.Approved))
	c := isoClient(t, iso)
	codes := map[string]int{}
	var first time.Time
	for end := time.Now().Add(limit); time.Now().Before(end); {
		*stan++
		resp, err := c.Send(authRequest(t, spec, *stan, pans[card], expiries[card]))
		if err != nil {
			codes["error"]++
			continue
		}
		code, _ := resp.GetString(39)
		codes[code]++
		if code == approved && first.IsZero() {
			first = time.Now()
		}
		if !first.IsZero() && cond() {
			return first, codes
		}
		if code != approved {
			time.Sleep(50 * time.Millisecond)
		}
	}
	return first, codes
}

// TestFaultStandbyLost: the synchronous standby is lost (its Patroni and
// PostgreSQL killed, as a lost machine) under load. Two nodes in Patroni's
// non-strict mode: after a short stall the primary commits alone,
// authorisations are approved again and antaca_ledger_sync_standbys says 0
// (an HA deployment alerts on it). Three nodes in strict mode: the other
// standby becomes synchronous, so approvals go on with every commit still
// on two servers.
func TestFaultStandbyLost(t *testing.T) {
	for _, c := range []struct {
		name           string
		offset, nodes  int
		strict         bool
		wantSync       float64
		fault, outcome string
	}{
		{"two nodes, non-strict", 11000, 2, false, 0,
			"synchronous standby lost (its Patroni and PostgreSQL killed) under load, two nodes, non-strict synchronous mode",
			"the primary then commits alone: antaca_ledger_sync_standbys is 0 (alert on it)"},
		{"three nodes, strict", 13000, 3, true, 1,
			"synchronous standby lost (its Patroni and PostgreSQL killed) under load, three nodes, synchronous_mode_strict",
			"Patroni made the other standby synchronous: every commit still on two servers, antaca_ledger_sync_standbys 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := startHA(t, c.offset, c.nodes, c.strict)
			dsn := h.url()
			ctx := t.Context()
			pool, keys := h.migrated()
			pans, expiries := killTestData(t, pool, keys, 1)
			st := newStack(t, dsn, keys, nil)
			reg := prometheus.NewRegistry()
			go watchReplication(ctx, ledger.New(pool, ledger.Config{}), reg, 200*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
			syncs := func() float64 { return gauge(t, reg, "antaca_ledger_sync_standbys") }
			names := func() string {
				var n string
				pool.QueryRow(ctx, `SHOW synchronous_standby_names`).Scan(&n)
				return n
			}

			stan := 0
			if first, codes := approveUntil(t, st.iso, 0, pans, expiries, &stan, 30*time.Second, func() bool { return syncs() == 1 }); first.IsZero() {
				t.Fatalf("before: no approval with a synchronous standby: %v, sync standbys %v", codes, syncs())
			}
			primary, standby := h.primary(), h.syncStandby()
			if standby == 0 || standby == primary {
				t.Fatalf("primary node%d, synchronous standby node%d", primary, standby)
			}
			lost := time.Now()
			h.killNode(standby)
			// Settled: approvals, the gauge as wanted, and the lost node
			// no longer named synchronous.
			first, codes := approveUntil(t, st.iso, 0, pans, expiries, &stan, 60*time.Second, func() bool {
				return syncs() == c.wantSync && !strings.Contains(names(), fmt.Sprintf("node%d", standby))
			})
			n := names()
			if first.IsZero() || syncs() != c.wantSync || strings.Contains(n, fmt.Sprintf("node%d", standby)) {
				t.Fatalf("after the standby's loss: first approval %v, answers %v, sync standbys %v, synchronous_standby_names %q; want approvals with %v synchronous standbys",
					first, codes, syncs(), n, c.wantSync)
			}
			if (c.wantSync == 0) != (n == "") {
				t.Fatalf("synchronous_standby_names %q with %v synchronous standbys wanted", n, c.wantSync)
			}
			if p := h.primary(); p != primary {
				t.Fatalf("primary changed from node%d to node%d", primary, p)
			}
			t.Logf("synchronous standby node%d lost: first approval %d ms after, answers %v, synchronous_standby_names now %q", standby, first.Sub(lost).Milliseconds(), codes, n)
			faulttest.Record(t, faulttest.Row{Area: "ledger", Fault: c.fault,
				Behaviour: fmt.Sprintf("commits waited for the lost standby until Patroni changed synchronous_standby_names (to %q): first approval %d ms after the loss (answers meanwhile %v); %s",
					n, first.Sub(lost).Milliseconds(), codes, c.outcome),
				Verify: "n/a"})
		})
	}
}
