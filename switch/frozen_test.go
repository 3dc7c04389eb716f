package authswitch

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/internal/faulttest"
)

// TestFaultPostgresFrozen freezes every PostgreSQL process (SIGSTOP): the
// database stops answering without closing its connections, as in a
// network partition. Requests must still be answered, issuer unavailable,
// within the host's batch budget (1 s for the look-up, 1 s for the write),
// and the switch must recover by itself when the database thaws.
func TestFaultPostgresFrozen(t *testing.T) {
	e, cl := faultEnv(t, ProfileISO87)
	card := e.virtualCard(e.prog, 10_000_000)
	conn := e.dial()
	approved := actionCode(t, e.profile, cardhost.Approved)
	unavailable := actionCode(t, e.profile, cardhost.IssuerUnavailable)

	send := func() (string, time.Duration, error) {
		start := time.Now()
		resp, err := conn.Send(e.msg("100", card, 100, nil))
		if err != nil {
			return "", time.Since(start), err
		}
		code, _ := resp.GetString(39)
		return code, time.Since(start), nil
	}
	if code, _, err := send(); err != nil || code != approved {
		t.Fatalf("before the fault: %q, %v", code, err)
	}

	pids := (*cl).Processes()
	signal := func(sig syscall.Signal) {
		for _, pid := range pids {
			syscall.Kill(pid, sig)
		}
	}
	signal(syscall.SIGSTOP)
	thawed := false
	thaw := func() {
		if !thawed {
			signal(syscall.SIGCONT)
			thawed = true
		}
	}
	t.Cleanup(thaw)

	var worst time.Duration
	for range 3 {
		code, took, err := send()
		if err != nil {
			t.Fatalf("while frozen: no answer: %v", err)
		}
		worst = max(worst, took)
		if code != unavailable {
			t.Errorf("while frozen: DE39 %s, want %s", code, unavailable)
		}
		if took > 2500*time.Millisecond {
			t.Errorf("while frozen: answered after %v, want ≤ 2.5s", took)
		}
	}
	thaw()

	back := time.Now()
	var recovered time.Duration
	for {
		if code, _, err := send(); err == nil && code == approved {
			recovered = time.Since(back)
			break
		}
		if time.Since(back) > 15*time.Second {
			t.Fatal("no approval within 15s of the thaw")
		}
		time.Sleep(50 * time.Millisecond)
	}
	vctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	vs, err := e.led.Verify(vctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		t.Errorf("ledger verify: %s", v)
	}
	faulttest.Record(t, faulttest.Row{Area: "ledger", Fault: "PostgreSQL frozen (SIGSTOP of every server process), connections left open",
		Behaviour: fmt.Sprintf("3 requests while frozen answered %s, slowest %v (batch budget 1 s per stage); approved again %v after SIGCONT, no restart",
			unavailable, worst.Round(time.Millisecond), recovered.Round(time.Millisecond)),
		Verify: "clean"})
}
