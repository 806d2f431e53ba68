package server

// This file holds the server's timeouts. A registry moves multi-gigabyte
// layers over slow links, so no total time bounds a request; instead a
// connection that moves no byte for the stall time, in either direction,
// is dropped, and an idle keep-alive connection is closed.

import (
	"errors"
	"io"
	"net"
	"net/http"
	"time"
)

const (
	// DefaultStallTimeout is how long a request body or a response may
	// move no byte before the connection is dropped: nginx's
	// client_body_timeout and send_timeout.
	DefaultStallTimeout = 60 * time.Second
	// DefaultIdleTimeout is how long a keep-alive connection may wait
	// for its next request.
	DefaultIdleTimeout = 2 * time.Minute
	// headerTimeout bounds reading a request's headers.
	headerTimeout = 30 * time.Second
	// stallStep is the most a single write is given the stall time for,
	// so that a slow client is not cut off while a large write is still
	// moving: the lowest rate tolerated is stallStep per stall time.
	stallStep = 64 << 10
)

// WithStallTimeout drops a connection whose request body or response
// moves no byte for d; DefaultStallTimeout unless set. It bounds no
// total time, so an upload of any size succeeds as long as it moves.
func WithStallTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return errors.New("server: stall timeout must be positive")
		}
		o.stall = d
		return nil
	}
}

// WithIdleTimeout closes keep-alive connections that send no new request
// for d; DefaultIdleTimeout unless set.
func WithIdleTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return errors.New("server: idle timeout must be positive")
		}
		o.idle = d
		return nil
	}
}

// newHTTPServer returns the http.Server for h with the options' timeouts.
func (o *options) newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           stallReads(h, o.stall),
		ReadHeaderTimeout: headerTimeout,
		IdleTimeout:       o.idle,
	}
}

// stallReads gives every read of a request body a deadline of d from the
// read's start, and clears it once the body is read to its end, so that the time the
// registry then takes to commit the blob is not counted.
func stallReads(next http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &stallBody{ReadCloser: r.Body, rc: http.NewResponseController(w), d: d}
		}
		next.ServeHTTP(w, r)
	})
}

type stallBody struct {
	io.ReadCloser
	rc *http.ResponseController
	d  time.Duration
}

// Read implements io.Reader.
func (b *stallBody) Read(p []byte) (int, error) {
	_ = b.rc.SetReadDeadline(time.Now().Add(b.d))
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		// Any other error leaves the deadline, which then also bounds
		// the server's draining of the body after the handler.
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// stallListener gives every write on its connections a deadline of d from
// the write's start, in steps of at most stallStep bytes.
type stallListener struct {
	net.Listener
	d time.Duration
}

// Accept implements net.Listener.
func (l stallListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &stallConn{Conn: c, d: l.d}, nil
}

type stallConn struct {
	net.Conn
	d time.Duration
}

// Write implements net.Conn.
func (c *stallConn) Write(p []byte) (int, error) {
	var done int
	for done < len(p) {
		step := min(len(p)-done, stallStep)
		if err := c.SetWriteDeadline(time.Now().Add(c.d)); err != nil {
			return done, err
		}
		n, err := c.Conn.Write(p[done : done+step])
		done += n
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// CloseWrite lets net/http half-close a TCP connection as it does
// unwrapped ones.
func (c *stallConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
