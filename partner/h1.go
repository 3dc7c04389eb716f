package partner

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Webhook deliveries use their own HTTP/1.1 client, synchronous: the
// request is written and the answer read on the calling goroutine, so the
// TLS work and the system calls of a delivery run on the thread of the
// (niced) webhook worker. net/http's Transport writes and reads in
// goroutines of its own (a connection's writeLoop and readLoop), which run
// at normal priority whatever the caller's thread. The same dialer checks
// the address dialled; redirects are never followed (an answer is an
// answer); connections are kept alive and reused.

// maxIdleConns bounds the idle connections kept per host.
const maxIdleConns = 64

// idleConnTimeout is how long an idle connection is kept.
const idleConnTimeout = 90 * time.Second

// h1Conn is one kept-alive connection.
type h1Conn struct {
	c    net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	used time.Time
}

// h1Pool keeps the idle connections by scheme and host:port.
type h1Pool struct {
	mu   sync.Mutex
	idle map[string][]*h1Conn
}

func (p *h1Pool) get(key string) *h1Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	for cs := p.idle[key]; len(cs) > 0; cs = p.idle[key] {
		c := cs[len(cs)-1]
		p.idle[key] = cs[:len(cs)-1]
		if time.Since(c.used) < idleConnTimeout {
			return c
		}
		c.c.Close()
	}
	return nil
}

func (p *h1Pool) put(key string, c *h1Conn) {
	c.used = time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.idle == nil {
		p.idle = map[string][]*h1Conn{}
	}
	if len(p.idle[key]) >= maxIdleConns {
		c.c.Close()
		return
	}
	p.idle[key] = append(p.idle[key], c)
}

// dial opens a connection to u's host: the dialer's address check, then
// TLS for https.
func (c *Client) dial(ctx context.Context, u *url.URL) (*h1Conn, error) {
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	raw, err := c.dialer.DialContext(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return nil, err
	}
	conn := raw
	if u.Scheme == "https" {
		cfg := c.tls.Clone()
		cfg.ServerName = u.Hostname()
		cfg.NextProtos = []string{"http/1.1"}
		tc := tls.Client(raw, cfg)
		hctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			raw.Close()
			return nil, err
		}
		conn = tc
	}
	return &h1Conn{c: conn, br: bufio.NewReaderSize(conn, 4<<10), bw: bufio.NewWriterSize(conn, 8<<10)}, nil
}

// PostSync POSTs req (its URL checked, a body with a known length) over a
// kept-alive HTTP/1.1 connection, on the calling goroutine, within the
// client's timeout; it returns the answer's status once its body (up to
// 64 KiB) is read. A 3xx is returned as it is.
func (c *Client) PostSync(req *http.Request) (int, error) {
	if err := c.CheckURL(req.URL.String()); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(req.Context(), c.cfg.Timeout)
	defer cancel()
	key := req.URL.Scheme + "://" + req.URL.Host
	for try := 0; ; try++ {
		conn, reused := c.conns.get(key), true
		if conn == nil {
			var err error
			if conn, err = c.dial(ctx, req.URL); err != nil {
				return 0, err
			}
			reused = false
		}
		status, keep, sent, err := roundTrip(ctx, conn, req)
		if err == nil && keep {
			conn.c.SetDeadline(time.Time{})
			c.conns.put(key, conn)
		} else {
			conn.c.Close()
		}
		// A kept connection the receiver closed meanwhile fails before any
		// answer: try once more on a new one (deliveries are idempotent by
		// their event id).
		if err != nil && reused && !sent && try == 0 && ctx.Err() == nil {
			continue
		}
		return status, err
	}
}

// roundTrip writes req on conn and reads its answer: the status, whether
// the connection can serve another request, and whether any of the answer
// came (a request on a stale connection gets none).
func roundTrip(ctx context.Context, conn *h1Conn, req *http.Request) (status int, keep, answered bool, err error) {
	deadline, _ := ctx.Deadline()
	conn.c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	body, err := req.GetBody()
	if err != nil {
		return 0, false, false, err
	}
	r := req.Clone(ctx)
	r.Body = body
	if err := r.Write(conn.bw); err != nil {
		return 0, false, false, ctxErr(ctx, err)
	}
	if err := conn.bw.Flush(); err != nil {
		return 0, false, false, ctxErr(ctx, err)
	}
	if _, err := conn.br.Peek(1); err != nil {
		return 0, false, false, ctxErr(ctx, err)
	}
	resp, err := http.ReadResponse(conn.br, r)
	if err != nil {
		return 0, false, true, ctxErr(ctx, err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return resp.StatusCode, false, true, ctxErr(ctx, err)
	}
	// Reuse only a connection whose answer was read to its end (the copy
	// stopped short of the limit: at the body's end).
	keep = !resp.Close && n < 64<<10
	return resp.StatusCode, keep, true, nil
}

// ctxErr is ctx's error when ctx ended (the deadline set on the connection
// fired), else err.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}
