package authswitch

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moov-io/iso8583"
)

// conn is one accepted socket: a reader goroutine that reads frames and
// starts one handler per frame, bounded by a semaphore of MaxInFlight, and
// a writer goroutine that writes answers in the order they are ready (each
// carries its STAN, so answers may overtake each other).
type conn struct {
	s      *Server
	nc     net.Conn
	remote string
	br     *bufio.Reader

	sem      chan struct{} // one slot per request read and not yet answered
	out      chan []byte   // answers, length header included
	inflight atomic.Int64
	// started is false until the first whole frame arrived: until then
	// the connection has FirstMessageTimeout, not IdleTimeout.
	started  bool
	handlers sync.WaitGroup
	abort    sync.Once
	// unreadable is set by a handler that found a message it cannot
	// answer (no MTI or STAN): the stream is not to be trusted, so
	// reading stops, and the connection closes once the requests already
	// read are answered.
	unreadable atomic.Bool
}

func (s *Server) newConn(nc net.Conn) *conn {
	return &conn{
		s:      s,
		nc:     nc,
		remote: nc.RemoteAddr().String(),
		br:     bufio.NewReaderSize(nc, 4096),
		sem:    make(chan struct{}, s.cfg.MaxInFlight),
		out:    make(chan []byte, s.cfg.MaxInFlight),
	}
}

// errUnreadable ends a connection that sent a message without a readable
// MTI or STAN.
var errUnreadable = errors.New("unreadable message")

// errIdle ends a connection that was silent for IdleTimeout.
var errIdle = errors.New("idle timeout")

// errFirstMessage ends a new connection that sent no message within
// FirstMessageTimeout.
var errFirstMessage = errors.New("no first message in time")

// errStop ends reading because the server shuts down.
var errStop = errors.New("shutting down")

func (c *conn) serve() {
	s := c.s
	s.m.connections.Inc()
	defer s.m.connections.Dec()
	s.log.Info("connection opened", "remote", c.remote)

	writerDone := make(chan struct{})
	go c.writeLoop(writerDone)

	err := c.readLoop()
	switch {
	case errors.Is(err, errStop), errors.Is(err, io.EOF):
		s.log.Info("connection closing", "remote", c.remote, "reason", err.Error())
	case errors.Is(err, errIdle):
		s.log.Info("connection idle, closing", "remote", c.remote)
	case errors.Is(err, errFirstMessage):
		s.m.refused.WithLabelValues(s.p.name, "first_message").Inc()
		s.log.Info("connection sent no message in time, closing", "remote", c.remote)
	default:
		s.log.Warn("connection closing", "remote", c.remote, "err", err)
	}

	// Answer everything already read, then stop the writer.
	c.handlers.Wait()
	close(c.out)
	<-writerDone
	if errors.Is(err, errStop) && s.cfg.SignOff {
		c.signOff()
		// Give the peer a moment to answer the sign-off and to take its
		// last answers before the socket goes: some clients (moov-io's
		// connection among them) race a close against replies they are
		// still matching.
		c.nc.SetReadDeadline(time.Now().Add(s.cfg.SignOffWait))
		io.Copy(io.Discard, c.br)
	}
	c.nc.Close()
	s.log.Info("connection closed", "remote", c.remote)
}

// stopReading makes a reader blocked on the socket return; serve then
// drains and closes. Used by Shutdown.
func (c *conn) stopReading() {
	c.nc.SetReadDeadline(time.Now())
}

func (c *conn) stopping() bool {
	select {
	case <-c.s.quit:
		return true
	default:
		return false
	}
}

// readLoop reads frames until the peer goes, the stream breaks or the
// server shuts down. It takes a slot before reading each frame, so a full
// semaphore leaves the socket unread (back-pressure to the peer's TCP
// window) rather than dropping anything.
func (c *conn) readLoop() error {
	s := c.s
	for {
		select {
		case c.sem <- struct{}{}:
		case <-s.quit:
			return errStop
		}
		c.inflight.Add(1)
		s.m.inflight.Inc()

		frame, started, err := c.readFrame()
		if err != nil {
			c.release()
			return err
		}
		received := time.Now()
		s.m.read.Observe(received.Sub(started).Seconds())

		c.handlers.Add(1)
		s.workers.run(func() {
			defer c.handlers.Done()
			out := s.handle(s.baseCtx, frame, received, c.remote)
			if out.close {
				c.release()
				c.unreadable.Store(true)
				c.stopReading()
				return
			}
			if out.answer == nil {
				c.release()
				return
			}
			c.out <- out.answer // never blocks: cap(out) == cap(sem)
		})
	}
}

// readFrame reads one length header (2 bytes big-endian, or 4 with two
// zero bytes after the length) and its body. The first byte may take
// IdleTimeout (longer while requests are in flight); the rest of the frame
// must arrive within ReadTimeout. A new connection's first frame must be
// whole within FirstMessageTimeout.
func (c *conn) readFrame() ([]byte, time.Time, error) {
	s := c.s
	var hdr [4]byte
	var firstBy time.Time
	if !c.started {
		firstBy = time.Now().Add(min(s.cfg.FirstMessageTimeout, s.cfg.IdleTimeout))
	}
	for {
		if c.started {
			c.nc.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		} else {
			c.nc.SetReadDeadline(firstBy)
		}
		if c.stopping() {
			return nil, time.Time{}, errStop
		}
		if c.unreadable.Load() {
			return nil, time.Time{}, errUnreadable
		}
		_, err := io.ReadFull(c.br, hdr[:1])
		if err == nil {
			break
		}
		if c.stopping() {
			return nil, time.Time{}, errStop
		}
		if c.unreadable.Load() {
			return nil, time.Time{}, errUnreadable
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if !c.started && s.cfg.FirstMessageTimeout < s.cfg.IdleTimeout {
				return nil, time.Time{}, errFirstMessage
			}
			if !c.started {
				return nil, time.Time{}, errIdle
			}
			// Keep a quiet peer while its requests are being decided:
			// one of them is ours (the slot taken for this read).
			if c.inflight.Load() > 1 {
				continue
			}
			return nil, time.Time{}, errIdle
		}
		return nil, time.Time{}, err
	}
	started := time.Now()
	deadline := started.Add(s.cfg.ReadTimeout)
	if !c.started && firstBy.Before(deadline) {
		deadline = firstBy
	}
	c.nc.SetReadDeadline(deadline)
	if _, err := io.ReadFull(c.br, hdr[1:s.cfg.Header]); err != nil {
		if !c.started && errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, started, errFirstMessage
		}
		return nil, started, fmt.Errorf("read length header: %w", err)
	}
	n := int(binary.BigEndian.Uint16(hdr[:2]))
	if n == 0 || n > s.cfg.MaxMessageSize {
		s.m.formatErrors.Inc()
		return nil, started, fmt.Errorf("frame length %d out of range 1..%d", n, s.cfg.MaxMessageSize)
	}
	frame := make([]byte, n)
	if _, err := io.ReadFull(c.br, frame); err != nil {
		if !c.started && errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, started, errFirstMessage
		}
		s.m.formatErrors.Inc()
		return nil, started, fmt.Errorf("read frame of %d bytes: %w", n, err)
	}
	c.started = true
	return frame, started, nil
}

// release frees one in-flight slot.
func (c *conn) release() {
	c.inflight.Add(-1)
	c.s.m.inflight.Dec()
	<-c.sem
}

func (c *conn) closeNow() {
	c.abort.Do(func() { c.nc.Close() })
}

// writeLoop writes answers as they come, flushing when no other answer is
// waiting, until out is closed. After a write error it keeps draining so
// handlers and the reader never block on a dead peer.
func (c *conn) writeLoop(done chan<- struct{}) {
	defer close(done)
	s := c.s
	bw := bufio.NewWriterSize(c.nc, 4096)
	var broken bool
	for body := range c.out {
		if !broken {
			start := time.Now()
			c.nc.SetWriteDeadline(start.Add(s.cfg.WriteTimeout))
			var hdr [4]byte
			binary.BigEndian.PutUint16(hdr[:], uint16(len(body)))
			bw.Write(hdr[:s.cfg.Header])
			bw.Write(body)
			var err error
			if len(c.out) == 0 {
				// A batch's answers come back together: let the other
				// handlers queue theirs so that one write carries them.
				runtime.Gosched()
			}
			if len(c.out) == 0 {
				err = bw.Flush()
			}
			if err == nil && bw.Buffered() == 0 {
				s.m.write.Observe(time.Since(start).Seconds())
			}
			if err != nil {
				broken = true
				s.log.Warn("write answer", "remote", c.remote, "err", err)
				c.closeNow()
			}
		}
		c.release()
	}
	if !broken {
		if err := bw.Flush(); err != nil {
			s.log.Warn("write answer", "remote", c.remote, "err", err)
		}
	}
}

// signOff tells the peer this end signs off; the answer is not awaited.
func (c *conn) signOff() {
	s := c.s
	m := iso8583.NewMessage(s.spec)
	m.MTI(s.p.netMTI)
	stan := fmt.Sprintf("%0*d", s.p.stanLen, s.netSTAN.Add(1))
	now := time.Now().UTC()
	if err := m.Field(7, now.Format("0102150405")); err != nil {
		return
	}
	if err := m.Field(11, stan); err != nil {
		return
	}
	if err := m.Field(s.p.netField, s.p.signOff); err != nil {
		return
	}
	body, err := m.Pack()
	if err != nil {
		s.log.Error("pack sign-off", "err", err)
		return
	}
	h := s.cfg.Header
	frame := make([]byte, h+len(body))
	binary.BigEndian.PutUint16(frame, uint16(len(body)))
	copy(frame[h:], body)
	c.nc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	if _, err := c.nc.Write(frame); err != nil {
		s.log.Warn("send sign-off", "remote", c.remote, "err", err)
	}
}
