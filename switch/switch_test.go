package authswitch

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/antaca/antaca/cardhost"
	"github.com/moov-io/iso8583"
	"github.com/prometheus/client_golang/prometheus"
)

func TestAuthorisation(t *testing.T) {
	for _, profile := range bothProfiles {
		t.Run(profile, func(t *testing.T) {
			a := newTestAuthorizer()
			_, addr := startServer(t, profile, a, nil)
			c := dial(t, addr, profile)

			for i, tc := range []struct {
				name       string
				pan        string
				reason     cardhost.Reason
				approval   string
				additional string
			}{
				{"approved", panApproved, cardhost.Approved, "A1B2C3", "0002978C000000008766"},
				{"insufficient funds", panNoFunds, cardhost.InsufficientFunds, "", "0002978C000000000500"},
				{"unknown card", "5100000000000008", cardhost.InvalidCard, "", ""},
			} {
				t.Run(tc.name, func(t *testing.T) {
					req := request(t, profile, "100", 100+i, tc.pan, 1234, nil)
					resp, err := c.Send(req)
					if err != nil {
						t.Fatal(err)
					}
					if got, want := get(t, resp, 0), mtiOf(profile, "110"); got != want {
						t.Errorf("MTI: got %s, want %s", got, want)
					}
					if got, want := get(t, resp, 39), actionCode(t, profile, tc.reason); got != want {
						t.Errorf("DE39: got %s, want %s", got, want)
					}
					if got := get(t, resp, 38); got != tc.approval {
						t.Errorf("DE38: got %q, want %q", got, tc.approval)
					}
					additional := tc.additional
					if profile == ProfileISO2003 && additional != "" {
						additional = additional[:7] + "2" + additional[7:] // the CMF's minor unit
					}
					if got := get(t, resp, 54); got != additional {
						t.Errorf("DE54: got %q, want %q", got, additional)
					}
					for _, n := range []int{2, 3, 4, 7, 11, 12, 32, 37, 41, 42, 49} {
						if got, want := strings.TrimLeft(get(t, resp, n), "0"), strings.TrimLeft(get(t, req, n), "0"); got != want {
							t.Errorf("DE%d echo: got %q, want %q", n, got, want)
						}
					}
				})
			}
		})
	}
}

func TestMessageClasses(t *testing.T) {
	pin := []byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0}
	for _, profile := range bothProfiles {
		t.Run(profile, func(t *testing.T) {
			original := "0100000101060112000000000123456" + "00000000000"
			if profile == ProfileISO2003 {
				original = "2100000000000101" + "20260601140000" + "123456"
			}
			origField := 90
			if profile == ProfileISO2003 {
				origField = 56
			}
			for i, tc := range []struct {
				fn    string
				class cardhost.MessageClass
				extra map[int]string
			}{
				{"100", cardhost.ClassAuthorization, map[int]string{48: "9203123", 6: "000000001300", 51: "840", 3: "010000"}},
				{"101", cardhost.ClassAuthorization, nil},
				{"200", cardhost.ClassFinancial, map[int]string{3: "010000"}},
				{"120", cardhost.ClassAdvice, nil},
				{"220", cardhost.ClassCompletion, map[int]string{origField: original}},
				{"400", cardhost.ClassReversal, map[int]string{origField: original, 95: "000000000500" + strings.Repeat("0", 30)}},
				{"401", cardhost.ClassReversal, map[int]string{origField: original}},
				{"420", cardhost.ClassReversalAdvice, map[int]string{origField: original}},
			} {
				t.Run(tc.fn, func(t *testing.T) {
					a := newTestAuthorizer()
					_, addr := startServer(t, profile, a, nil)
					c := dial(t, addr, profile)
					req := request(t, profile, tc.fn, 200+i, panApproved, 1234, tc.extra)
					if tc.fn == "100" {
						if err := req.BinaryField(52, pin); err != nil {
							t.Fatal(err)
						}
					}
					resp, err := c.Send(req)
					if err != nil {
						t.Fatal(err)
					}
					wantMTI := mtiOf(profile, tc.fn[:2]+"0")
					wantMTI = wantMTI[:2] + string(wantMTI[2]+1) + "0"
					if got := get(t, resp, 0); got != wantMTI {
						t.Errorf("answer MTI: got %s, want %s", got, wantMTI)
					}
					seen := a.requests()
					if len(seen) != 1 {
						t.Fatalf("authorizer saw %d requests, want 1", len(seen))
					}
					r := seen[0]
					if r.Class != tc.class || r.MTI != mtiOf(profile, tc.fn) || r.Profile != profile {
						t.Errorf("class/MTI/profile: got %v %s %s", r.Class, r.MTI, r.Profile)
					}
					if r.PAN != panApproved || r.Amount != 1234 || r.Currency != "978" || r.Expiry != "2812" || r.Track2 {
						t.Errorf("card fields: got PAN %s amount %d currency %s expiry %s track2 %v", cardhost.MaskPAN(r.PAN), r.Amount, r.Currency, r.Expiry, r.Track2)
					}
					entry := "012"
					if profile == ProfileISO2003 {
						entry = hex.EncodeToString([]byte(posDataCode))
					}
					if r.STAN != stanOf(profile, 200+i) || r.RRN != fmt.Sprintf("RRN%09d", 200+i) || r.AcquirerID != "123456" ||
						r.TransmissionTime != "0601120000" || r.MCC != "5411" || r.POSEntryMode != entry || r.ZoneKey != "zpk-test" ||
						r.MerchantID != "MERCHANT0000001" || !strings.HasPrefix(r.MerchantName, "ACME STORE") || !strings.HasPrefix(r.TerminalID, "TERM") {
						// Never %+v the request: it carries the PAN, CVC2 and PIN block.
						t.Errorf("identifying fields: got STAN %s RRN %s acquirer %s time %s MCC %s entry %s zone %s merchant %q %q terminal %q",
							r.STAN, r.RRN, r.AcquirerID, r.TransmissionTime, r.MCC, r.POSEntryMode, r.ZoneKey, r.MerchantID, r.MerchantName, r.TerminalID)
					}
					switch tc.fn {
					case "100":
						if r.CVC2 != "123" || r.ProcessingCode != "01" || r.BillingAmount != 1300 || r.BillingCurrency != "840" {
							t.Errorf("CVC2/processing/billing: got cvc2 set=%v %s %d %s", r.CVC2 == "123", r.ProcessingCode, r.BillingAmount, r.BillingCurrency)
						}
						if !bytes.Equal(r.PINBlock, pin) {
							t.Errorf("PIN block not passed on as raw bytes")
						}
					case "220", "400", "401", "420":
						o := r.Original
						if o == nil {
							t.Fatal("Original: nil")
						}
						want := cardhost.OriginalData{MTI: "0100", STAN: "000101", TransmissionTime: "0601120000", AcquirerID: "123456"}
						if profile == ProfileISO2003 {
							want = cardhost.OriginalData{MTI: "2100", STAN: "000000000101", LocalTime: "20260601140000", AcquirerID: "123456"}
						}
						if *o != want {
							t.Errorf("Original: got %+v, want %+v", *o, want)
						}
						if tc.fn == "400" {
							if r.ReplacementAmount == nil || *r.ReplacementAmount != 500 {
								t.Errorf("ReplacementAmount: got %v, want 500", r.ReplacementAmount)
							}
						} else if r.ReplacementAmount != nil {
							t.Errorf("ReplacementAmount: got %d, want nil", *r.ReplacementAmount)
						}
					case "200":
						if r.ProcessingCode != "01" {
							t.Errorf("processing code: got %s, want 01", r.ProcessingCode)
						}
					default:
						if r.CVC2 != "" || r.PINBlock != nil || r.Original != nil || r.ProcessingCode != "00" {
							t.Errorf("absent fields not empty")
						}
					}
				})
			}
		})
	}
}

func TestTrack2Expiry(t *testing.T) {
	for _, profile := range bothProfiles {
		t.Run(profile, func(t *testing.T) {
			a := newTestAuthorizer()
			_, addr := startServer(t, profile, a, nil)
			c := dial(t, addr, profile)
			req := request(t, profile, "100", 7, "", 100, map[int]string{2: "", 14: "", 35: panApproved + "=29011010000000000"})
			resp, err := c.Send(req)
			if err != nil {
				t.Fatal(err)
			}
			if got := get(t, resp, 39); got != actionCode(t, profile, cardhost.Approved) {
				t.Errorf("DE39: got %s", got)
			}
			r := a.requests()[0]
			if r.PAN != panApproved || r.Expiry != "2901" || !r.Track2 {
				t.Errorf("track 2: got PAN %s expiry %s track2 %v", cardhost.MaskPAN(r.PAN), r.Expiry, r.Track2)
			}
		})
	}
}

func TestNetworkManagement(t *testing.T) {
	for _, profile := range bothProfiles {
		t.Run(profile, func(t *testing.T) {
			a := newTestAuthorizer()
			_, addr := startServer(t, profile, a, nil)
			c := dial(t, addr, profile)
			p := profiles[profile]
			for i, tc := range []struct {
				code   string
				reason cardhost.Reason
			}{{p.signOn, cardhost.Approved}, {p.echo, cardhost.Approved}, {p.signOff, cardhost.Approved}, {"999", cardhost.FormatError}} {
				m := iso8583.NewMessage(testSpec(t, profile))
				m.MTI(p.netMTI)
				m.Field(7, "0601120000")
				m.Field(11, stanOf(profile, 900+i))
				m.Field(p.netField, tc.code)
				resp, err := c.Send(m)
				if err != nil {
					t.Fatal(err)
				}
				want := map[int]string{0: mtiOf(profile, "81"+p.netMTI[3:]), 11: stanOf(profile, 900+i), 7: "0601120000",
					p.netField: tc.code, 39: actionCode(t, profile, tc.reason)}
				for n, w := range want {
					if got := get(t, resp, n); got != w {
						t.Errorf("code %s: DE%d: got %s, want %s", tc.code, n, got, w)
					}
				}
			}
			if n := len(a.requests()); n != 0 {
				t.Errorf("authorizer saw %d network management messages", n)
			}
		})
	}
}

func TestAuthorizerErrorAndTimeout(t *testing.T) {
	for _, profile := range bothProfiles {
		t.Run(profile, func(t *testing.T) {
			a := newTestAuthorizer()
			a.err = errors.New("ledger down")
			_, addr := startServer(t, profile, a, nil)
			c := dial(t, addr, profile)
			resp, err := c.Send(request(t, profile, "100", 1, panApproved, 100, nil))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := get(t, resp, 39), actionCode(t, profile, cardhost.IssuerUnavailable); got != want {
				t.Errorf("error: DE39 got %s, want %s", got, want)
			}

			b := newTestAuthorizer()
			b.release = make(chan struct{}) // never released: times out
			_, addr = startServer(t, profile, b, func(c *Config) { c.DecideTimeout = 50 * time.Millisecond })
			c = dial(t, addr, profile)
			resp, err = c.Send(request(t, profile, "100", 2, panApproved, 100, nil))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := get(t, resp, 39), actionCode(t, profile, cardhost.IssuerUnavailable); got != want {
				t.Errorf("timeout: DE39 got %s, want %s", got, want)
			}
		})
	}
}

func TestAuthorizerPanic(t *testing.T) {
	for _, profile := range bothProfiles {
		t.Run(profile, func(t *testing.T) {
			a := newTestAuthorizer()
			a.panicky = true
			s, addr := startServer(t, profile, a, nil)
			c := dial(t, addr, profile)
			resp, err := c.Send(request(t, profile, "100", 1, panApproved, 100, nil))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := get(t, resp, 39), actionCode(t, profile, cardhost.SystemError); got != want {
				t.Errorf("DE39: got %s, want %s", got, want)
			}
			if got := metricValue(s.m.panics); got != 1 {
				t.Errorf("panics counted: got %v, want 1", got)
			}
			a.mu.Lock()
			a.panicky = false
			a.mu.Unlock()
			resp, err = c.Send(request(t, profile, "100", 2, panApproved, 100, nil))
			if err != nil {
				t.Fatalf("connection did not survive the panic: %v", err)
			}
			if got, want := get(t, resp, 39), actionCode(t, profile, cardhost.Approved); got != want {
				t.Errorf("after panic: DE39 got %s, want %s", got, want)
			}
		})
	}
}

func TestUnknownMTI(t *testing.T) {
	for _, profile := range bothProfiles {
		t.Run(profile, func(t *testing.T) {
			s, addr := startServer(t, profile, newTestAuthorizer(), nil)
			c := dial(t, addr, profile)
			m := iso8583.NewMessage(testSpec(t, profile))
			m.MTI(mtiOf(profile, "600"))
			m.Field(11, stanOf(profile, 42))
			resp, err := c.Send(m)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := get(t, resp, 0), mtiOf(profile, "610"); got != want {
				t.Errorf("MTI: got %s, want %s", got, want)
			}
			if got, want := get(t, resp, 11), stanOf(profile, 42); got != want {
				t.Errorf("STAN: got %s, want %s", got, want)
			}
			if got, want := get(t, resp, 39), actionCode(t, profile, cardhost.FormatError); got != want {
				t.Errorf("DE39: got %s, want %s", got, want)
			}
			if got := metricValue(s.m.formatErrors); got != 1 {
				t.Errorf("format errors: got %v, want 1", got)
			}
		})
	}
}

// TestUnparsableWithSTAN sends a message whose fields break after DE11:
// it is answered with a format error carrying its STAN, and the connection
// goes on.
func TestUnparsableWithSTAN(t *testing.T) {
	for _, profile := range bothProfiles {
		t.Run(profile, func(t *testing.T) {
			_, addr := startServer(t, profile, newTestAuthorizer(), nil)
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			good := request(t, profile, "100", 77, panApproved, 100, nil)
			raw, err := good.Pack()
			if err != nil {
				t.Fatal(err)
			}
			// Cut the message inside DE43 (after DE11): fields are missing.
			broken := raw[:len(raw)-30]
			nc.Write(rawFrame(broken))
			resp, err := readAnswer(t, nc, profile)
			if err != nil {
				t.Fatal(err)
			}
			// The fields before the broken one are echoed when a client
			// matches by them (DE2, DE37, DE41, ...), the others not.
			if get(t, resp, 0) != mtiOf(profile, "110") || get(t, resp, 11) != stanOf(profile, 77) ||
				get(t, resp, 39) != actionCode(t, profile, cardhost.FormatError) || get(t, resp, 2) != panApproved ||
				get(t, resp, 37) != get(t, good, 37) || get(t, resp, 41) != get(t, good, 41) || get(t, resp, 4) != "" || get(t, resp, 43) != "" {
				t.Errorf("format error answer: got MTI %s STAN %s DE39 %s DE37 %s DE41 %s DE4 %s", get(t, resp, 0), get(t, resp, 11), get(t, resp, 39),
					get(t, resp, 37), get(t, resp, 41), get(t, resp, 4))
			}
			nc.Write(rawFrame(raw))
			resp, err = readAnswer(t, nc, profile)
			if err != nil {
				t.Fatal(err)
			}
			if get(t, resp, 39) != actionCode(t, profile, cardhost.Approved) {
				t.Errorf("next message: DE39 %s", get(t, resp, 39))
			}
		})
	}
}

// TestBrokenFraming: garbage, a truncated frame and a 65535 length header
// each close their own connection only.
func TestBrokenFraming(t *testing.T) {
	for _, profile := range bothProfiles {
		t.Run(profile, func(t *testing.T) {
			_, addr := startServer(t, profile, newTestAuthorizer(), func(c *Config) { c.ReadTimeout = 300 * time.Millisecond })
			bystander := dial(t, addr, profile)
			check := func(stan int) {
				t.Helper()
				resp, err := bystander.Send(request(t, profile, "100", stan, panApproved, 100, nil))
				if err != nil {
					t.Fatalf("bystander: %v", err)
				}
				if get(t, resp, 39) != actionCode(t, profile, cardhost.Approved) {
					t.Fatalf("bystander: DE39 %s", get(t, resp, 39))
				}
			}
			check(1)
			for i, tc := range []struct {
				name      string
				send      []byte
				closeSend bool
			}{
				{"garbage", rawFrame([]byte("\xde\xad\xbe\xef garbage that is no ISO 8583 at all \x00\x01")), false},
				{"zero length", []byte{0, 0}, false},
				{"65535 no body", []byte{0xff, 0xff}, false},
				{"truncated then silent", append([]byte{0, 100}, bytes.Repeat([]byte("0"), 10)...), false},
				{"truncated then EOF", append([]byte{0, 100}, bytes.Repeat([]byte("0"), 10)...), true},
				{"plain text", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), false},
			} {
				t.Run(tc.name, func(t *testing.T) {
					nc, err := net.Dial("tcp", addr)
					if err != nil {
						t.Fatal(err)
					}
					defer nc.Close()
					nc.Write(tc.send)
					if tc.closeSend {
						nc.(*net.TCPConn).CloseWrite()
					}
					expectClosed(t, nc)
					check(10 + i)
				})
			}
		})
	}
}

// TestUnreadableMessageAnswersTheOthersFirst: a message without a readable
// MTI or STAN ends the connection, but only after the requests read before
// it are answered (their holds may be committed already).
func TestUnreadableMessageAnswersTheOthersFirst(t *testing.T) {
	for _, profile := range bothProfiles {
		t.Run(profile, func(t *testing.T) {
			a := newTestAuthorizer()
			a.release = make(chan struct{})
			a.entered = make(chan struct{}, 1)
			_, addr := startServer(t, profile, a, nil)
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			good, err := request(t, profile, "100", 7, panApproved, 100, nil).Pack()
			if err != nil {
				t.Fatal(err)
			}
			nc.Write(rawFrame(good))
			<-a.entered // being decided
			nc.Write(rawFrame([]byte("\xde\xad\xbe\xef no ISO 8583 here")))
			time.Sleep(50 * time.Millisecond) // the unreadable one is handled meanwhile
			close(a.release)
			resp, err := readAnswer(t, nc, profile)
			if err != nil {
				t.Fatalf("answer to the request before the unreadable one: %v", err)
			}
			if get(t, resp, 11) != stanOf(profile, 7) || get(t, resp, 39) != actionCode(t, profile, cardhost.Approved) {
				t.Fatalf("answer: STAN %s DE39 %s", get(t, resp, 11), get(t, resp, 39))
			}
			expectClosed(t, nc)
		})
	}
}

func TestBackPressure(t *testing.T) {
	const max = 4
	const total = 12
	for _, profile := range bothProfiles {
		t.Run(profile, func(t *testing.T) {
			a := newTestAuthorizer()
			a.release = make(chan struct{})
			a.entered = make(chan struct{}, total)
			s, addr := startServer(t, profile, a, func(c *Config) { c.MaxInFlight = max; c.DecideTimeout = 30 * time.Second })
			c := dial(t, addr, profile)

			var wg sync.WaitGroup
			errs := make(chan error, total)
			for i := range total {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, err := c.Send(request(t, profile, "100", 500+i, panApproved, 100, nil))
					if err == nil && get(t, resp, 39) != actionCode(t, profile, cardhost.Approved) {
						err = fmt.Errorf("stan %d: DE39 %s", 500+i, get(t, resp, 39))
					}
					errs <- err
				}()
			}
			for range max {
				select {
				case <-a.entered:
				case <-time.After(5 * time.Second):
					t.Fatal("authorizer not reached")
				}
			}
			// The reader holds no more than max: nothing else reaches
			// the authorizer while they are blocked.
			select {
			case <-a.entered:
				t.Fatal("more than MaxInFlight requests read")
			case <-time.After(300 * time.Millisecond):
			}
			if got := metricValue(s.m.inflight); got != max {
				t.Errorf("inflight gauge: got %v, want %d", got, max)
			}
			close(a.release)
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
			if n := len(a.requests()); n != total {
				t.Errorf("authorizer saw %d, want %d", n, total)
			}
		})
	}
}

func TestConcurrentConnections(t *testing.T) {
	const conns, each = 50, 10
	for _, profile := range bothProfiles {
		t.Run(profile, func(t *testing.T) {
			a := newTestAuthorizer()
			reg := prometheus.NewRegistry()
			s, addr := startServer(t, profile, a, func(c *Config) { c.Registerer = reg })
			var wg sync.WaitGroup
			errs := make(chan error, conns*each)
			for ci := range conns {
				c := dial(t, addr, profile)
				wg.Add(1)
				go func() {
					defer wg.Done()
					var inner sync.WaitGroup
					for j := range each {
						inner.Add(1)
						go func() {
							defer inner.Done()
							stan := ci*1000 + j
							pan := panApproved
							if j%2 == 1 {
								pan = panNoFunds
							}
							req := request(t, profile, "100", stan, pan, int64(stan+1), nil)
							wantDE4 := get(t, req, 4)
							resp, err := c.Send(req)
							if err != nil {
								errs <- err
								return
							}
							want := actionCode(t, profile, cardhost.Approved)
							if pan == panNoFunds {
								want = actionCode(t, profile, cardhost.InsufficientFunds)
							}
							if got := get(t, resp, 39); got != want || get(t, resp, 11) != stanOf(profile, stan) || get(t, resp, 4) != wantDE4 {
								errs <- fmt.Errorf("stan %d: got DE39 %s DE11 %s", stan, got, get(t, resp, 11))
							}
						}()
					}
					inner.Wait()
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if got := metricValue(s.m.connections); got != conns {
				t.Errorf("connections gauge: got %v, want %d", got, conns)
			}
			if got := metricValue(s.m.requests.WithLabelValues(profile, mtiOf(profile, "100"))); got != conns*each {
				t.Errorf("requests counted: got %v, want %d", got, conns*each)
			}
		})
	}
}

func TestGracefulShutdown(t *testing.T) {
	for _, profile := range bothProfiles {
		t.Run(profile, func(t *testing.T) {
			a := newTestAuthorizer()
			a.release = make(chan struct{})
			a.entered = make(chan struct{}, 8)
			s, err := New(Config{Profile: profile, Logger: testLogger(t), SignOff: true, DecideTimeout: 30 * time.Second}, a)
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			served := make(chan error, 1)
			go func() { served <- s.Serve(ln) }()
			addr := ln.Addr().String()

			signedOff := make(chan string, 1)
			c := dial(t, addr, profile, connectionInbound(func(m *iso8583.Message) {
				code, _ := m.GetString(profiles[profile].netField)
				signedOff <- code
			}))
			const n = 3
			answers := make(chan string, n)
			for i := range n {
				go func() {
					resp, err := c.Send(request(t, profile, "100", 700+i, panApproved, 100, nil))
					if err != nil {
						answers <- err.Error()
						return
					}
					answers <- get(t, resp, 39)
				}()
			}
			for range n {
				<-a.entered
			}
			shut := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				shut <- s.Shutdown(ctx)
			}()
			select {
			case err := <-shut:
				t.Fatalf("Shutdown returned before in-flight requests were answered: %v", err)
			case <-time.After(200 * time.Millisecond):
			}
			if nc, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				nc.Close()
				t.Error("still accepting after Shutdown")
			}
			close(a.release)
			for range n {
				if got := <-answers; got != actionCode(t, profile, cardhost.Approved) {
					t.Errorf("in-flight answer: got %s", got)
				}
			}
			if err := <-shut; err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			if err := <-served; !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve: got %v, want ErrServerClosed", err)
			}
			select {
			case code := <-signedOff:
				if code != profiles[profile].signOff {
					t.Errorf("sign-off code: got %s", code)
				}
			case <-time.After(2 * time.Second):
				t.Error("no sign-off received")
			}
		})
	}
}

func TestIdleTimeout(t *testing.T) {
	_, addr := startServer(t, ProfileISO87, newTestAuthorizer(), func(c *Config) { c.IdleTimeout = 200 * time.Millisecond })
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	start := time.Now()
	expectClosed(t, nc)
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("closed after %v, before the idle timeout", d)
	}
}

func TestSharedRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	for _, profile := range bothProfiles {
		if _, err := New(Config{Profile: profile, Registerer: reg}, newTestAuthorizer()); err != nil {
			t.Fatalf("%s: %v", profile, err)
		}
	}
	if _, err := New(Config{Profile: "iso93"}, newTestAuthorizer()); err == nil {
		t.Error("unknown profile: got nil error")
	}
}
