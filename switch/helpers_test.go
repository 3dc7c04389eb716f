package authswitch

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/specs"
	"github.com/moov-io/iso8583"
	connection "github.com/moov-io/iso8583-connection"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// testAuthorizer decides from a table of PAN → Decision and records every
// request it saw. Hooks make it fail, panic or block.
type testAuthorizer struct {
	mu        sync.Mutex
	decisions map[string]cardhost.Decision
	seen      []cardhost.AuthRequest

	err     error
	panicky bool
	release chan struct{} // when set, Authorize waits for it to be closed
	entered chan struct{} // when set, receives once per call before waiting
}

func (a *testAuthorizer) Authorize(ctx context.Context, req *cardhost.AuthRequest) (cardhost.Decision, error) {
	a.mu.Lock()
	a.seen = append(a.seen, *req)
	d, ok := a.decisions[req.PAN]
	err, panicky, release, entered := a.err, a.panicky, a.release, a.entered
	a.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if release != nil {
		select {
		case <-release:
		case <-ctx.Done():
			return cardhost.Decision{}, ctx.Err()
		}
	}
	if panicky {
		panic("test authorizer panics")
	}
	if err != nil {
		return cardhost.Decision{}, err
	}
	if !ok {
		return cardhost.Decision{Reason: cardhost.InvalidCard}, nil
	}
	return d, nil
}

func (a *testAuthorizer) requests() []cardhost.AuthRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]cardhost.AuthRequest(nil), a.seen...)
}

const (
	panApproved = "4000001234567899"
	panNoFunds  = "4000001234567881"
)

func newTestAuthorizer() *testAuthorizer {
	return &testAuthorizer{decisions: map[string]cardhost.Decision{
		panApproved: {Reason: cardhost.Approved, ApprovalCode: "A1B2C3", Available: 8766, Currency: "978", HasAvailable: true, HoldID: 1},
		panNoFunds:  {Reason: cardhost.InsufficientFunds, Available: 500, Currency: "978", HasAvailable: true},
	}}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func testSpec(t testing.TB, profile string) *iso8583.MessageSpec {
	t.Helper()
	spec, err := specs.ISOSpec(profile)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// startServer serves profile on 127.0.0.1:0 and shuts it down at the end
// of the test.
func startServer(t testing.TB, profile string, a Authorizer, tweak func(*Config)) (*Server, string) {
	t.Helper()
	cfg := Config{Profile: profile, Logger: testLogger(t), ZoneKey: "zpk-test", Registerer: prometheus.NewRegistry()}
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := New(cfg, a)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("serve: got %v, want ErrServerClosed", err)
		}
	})
	return s, ln.Addr().String()
}

// dial connects an iso8583-connection client.
func dial(t testing.TB, addr, profile string, opts ...connection.Option) *connection.Connection {
	t.Helper()
	opts = append([]connection.Option{connection.SendTimeout(10 * time.Second)}, opts...)
	c, err := connection.New(addr, testSpec(t, profile), ReadLengthHeader, WriteLengthHeader, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// stanOf formats n as a STAN of the profile's width.
func stanOf(profile string, n int) string {
	if profile == ProfileISO2003 {
		return fmt.Sprintf("%012d", n)
	}
	return fmt.Sprintf("%06d", n)
}

func mtiOf(profile, fn string) string {
	if profile == ProfileISO2003 {
		return "2" + fn
	}
	return "0" + fn
}

// request builds a card request of the profile. fn is the MTI without its
// version digit ("100", "400", ...). extra overrides or adds fields.
func request(t testing.TB, profile, fn string, stan int, pan string, amount int64, extra map[int]string) *iso8583.Message {
	t.Helper()
	m := iso8583.NewMessage(testSpec(t, profile))
	m.MTI(mtiOf(profile, fn))
	fields := map[int]string{
		2:  pan,
		3:  "000000",
		4:  fmt.Sprintf("%012d", amount),
		7:  "0601120000",
		11: stanOf(profile, stan),
		14: "2812",
		18: "5411",
		22: "012",
		32: "123456",
		37: fmt.Sprintf("RRN%09d", stan),
		41: "TERM0001",
		42: "MERCHANT0000001",
		43: "ACME STORE               PARIS        FR",
		49: "978",
	}
	if profile == ProfileISO2003 {
		fields[12] = "20260601140000"
		fields[41] = "TERM000000000001"
	} else {
		fields[12] = "140000"
		fields[13] = "0601"
	}
	for k, v := range extra {
		if v == "" {
			delete(fields, k)
			continue
		}
		fields[k] = v
	}
	if profile == ProfileISO2003 {
		fields = cmfFields(t, fn, fields)
	}
	for k, v := range fields {
		if err := m.Field(k, v); err != nil {
			t.Fatalf("set DE%d=%q: %v", k, v, err)
		}
	}
	return m
}

// posDataCode is a CMF DE22 (jPOS PosDataCode): magnetic stripe read,
// online PIN capable, attended terminal.
var posDataCode = string([]byte{0x10, 0, 0, 0, 0x08, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0})

// cmfFields turns fields given with their 1987 meanings into the jPOS
// CMF's: DE4/DE6 with their currency (DE49/DE51) inside, DE18 MCC to
// DE26, a POS data code in DE22, DE43 text (name 25, city 13, country)
// to its sub-fields, DE48 tag 92 (CVC2) to DE49.2, and a DE95
// replacement amount to a partial reversal (DE24 401, DE4 what remains,
// DE30 the original) or a completion for another amount (DE24 202).
func cmfFields(t testing.TB, fn string, f map[int]string) map[int]string {
	t.Helper()
	amount := func(v, ccy string) string {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("amount %q: %v", v, err)
		}
		if ccy == "" {
			ccy = "978"
		}
		return specs.Amount2003{Currency: ccy, MinorUnit: specs.MinorUnit(ccy), Amount: n}.String()
	}
	out := map[int]string{}
	for k, v := range f {
		switch k {
		case 4:
			out[4] = amount(v, f[49])
		case 6:
			out[6] = amount(v, f[51])
		case 49, 51:
		case 18:
			out[26] = v
		case 22:
			out[22] = posDataCode
		case 43:
			name, city, country := v, "", ""
			if len(v) == 40 {
				// Country in positions 38-40: alpha-2 (after a space), alpha-3 or numeric.
				name, city, country = strings.TrimRight(v[:25], " "), strings.TrimSpace(v[25:37]), strings.TrimSpace(v[37:])
			}
			b, err := specs.PackSubfields(specs.CardAcceptorTable, map[int]string{2: name, 4: city, 7: country})
			if err != nil {
				t.Fatal(err)
			}
			out[43] = string(b)
		case 48:
			if strings.HasPrefix(v, "92") && len(v) >= 4 {
				b, err := specs.PackSubfields(specs.VerificationTable, map[int]string{2: v[4:]})
				if err != nil {
					t.Fatal(err)
				}
				out[49] = string(b)
				continue
			}
			out[48] = v
		case 95:
		default:
			out[k] = v
		}
	}
	if repl, ok := f[95]; ok && out[4] != "" {
		orig := out[4]
		out[4] = amount(repl[:12], f[49])
		if fn == "220" || fn == "221" {
			out[24] = "202"
		} else {
			a, _ := specs.ParseAmount2003(orig)
			out[30] = string(specs.PackAmountsOriginal(a, a))
			out[24] = "401"
		}
	}
	return out
}

func get(t testing.TB, m *iso8583.Message, n int) string {
	t.Helper()
	v, err := m.GetString(n)
	if err != nil {
		t.Fatalf("DE%d: %v", n, err)
	}
	return v
}

func actionCode(t testing.TB, profile string, r cardhost.Reason) string {
	t.Helper()
	c, err := specs.ActionCode(profile, string(r))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var bothProfiles = []string{ProfileISO87, ProfileISO2003}

// plainDial opens a plain socket to addr, closed when the test ends.
func plainDial(t testing.TB, addr string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// mustPack packs m.
func mustPack(t testing.TB, m *iso8583.Message) []byte {
	t.Helper()
	raw, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// rawFrame writes body with a length header on a plain socket.
func rawFrame(body []byte) []byte {
	f := make([]byte, 2+len(body))
	binary.BigEndian.PutUint16(f, uint16(len(body)))
	copy(f[2:], body)
	return f
}

// readAnswer reads one frame from a plain socket and unpacks it.
func readAnswer(t testing.TB, nc net.Conn, profile string) (*iso8583.Message, error) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := ReadLengthHeader(nc)
	if err != nil {
		return nil, err
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(nc, body); err != nil {
		return nil, err
	}
	m := iso8583.NewMessage(testSpec(t, profile))
	if err := m.Unpack(body); err != nil {
		return nil, err
	}
	return m, nil
}

// expectClosed waits until the server closes nc.
func expectClosed(t testing.TB, nc net.Conn) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 256)
	for {
		_, err := nc.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("connection still open")
		}
		return
	}
}

// connectionInbound passes requests the server sends (sign-off) to f.
func connectionInbound(f func(*iso8583.Message)) connection.Option {
	return connection.InboundMessageHandler(func(_ *connection.Connection, m *iso8583.Message) { f(m) })
}

// metricValue reads a counter or gauge.
func metricValue(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var d dto.Metric
	if err := (<-ch).Write(&d); err != nil {
		return -1
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}
