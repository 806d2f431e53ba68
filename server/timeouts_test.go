package server_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-dev/ferry/server"
)

// testStall is short for a test, long enough for a loaded CI machine.
const testStall = time.Second

func startStalling(t *testing.T) *server.Server {
	t.Helper()
	s, err := server.Start(context.Background(), "127.0.0.1:0", server.WithRoot(t.TempDir()),
		server.WithStallTimeout(testStall), server.WithIdleTimeout(testStall))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// closedWithin fails unless the server closes c within d (reading
// whatever it still sends).
func closedWithin(t *testing.T, c net.Conn, d time.Duration, what string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("%s: the server still holds the connection after %s", what, d)
	}
}

// TestIdleConnectionClosed: a keep-alive connection that sends nothing
// more is closed (issue 18 item 3).
func TestIdleConnectionClosed(t *testing.T) {
	s := startStalling(t)
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /v2/ HTTP/1.1\r\nHost: %s\r\n\r\n", s.Addr)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	closedWithin(t, c, 10*testStall, "idle keep-alive connection")
}

// TestStalledUploadDropped: an upload whose body stops moving is dropped
// after the stall time, while one that moves slowly for several stall
// times succeeds (a stall rule, not a total time).
func TestStalledUploadDropped(t *testing.T) {
	s := startStalling(t)
	r := &reg{t: t, url: s.URL}
	post := func() string {
		resp, body := r.do(http.MethodPost, "/v2/slow/blobs/uploads/", nil)
		r.want(resp, body, http.StatusAccepted)
		return r.location(resp)
	}
	data := bytes.Repeat([]byte("s"), 10<<10)
	d := digest.FromBytes(data)

	// Slow but moving: ten pieces, testStall/4 apart (2.5 stall times in all).
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < 10; i++ {
			_, _ = pw.Write(data[i*1024 : (i+1)*1024])
			time.Sleep(testStall / 4)
		}
		pw.Close()
	}()
	req, err := http.NewRequest(http.MethodPut, withQuery(post(), "digest", d.String()), pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(data))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("slow upload: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("slow upload that keeps moving: %s, want 201", resp.Status)
	}

	// Stalled: half the body, then nothing.
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	loc, _ := url.Parse(post())
	fmt.Fprintf(c, "PATCH %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", loc.RequestURI(), s.Addr, len(data))
	_, _ = c.Write(data[:len(data)/2])
	closedWithin(t, c, 10*testStall, "stalled upload")
}

// TestStalledDownloadDropped: a client that stops reading a large blob is
// dropped after the stall time.
func TestStalledDownloadDropped(t *testing.T) {
	s := startStalling(t)
	r := &reg{t: t, url: s.URL}
	data := bytes.Repeat([]byte("d"), 64<<20)
	desc := r.pushBlob("big", "application/octet-stream", data)
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(64 << 10)
	}
	fmt.Fprintf(c, "GET /v2/big/blobs/%s HTTP/1.1\r\nHost: %s\r\n\r\n", desc.Digest, s.Addr)
	time.Sleep(3 * testStall)
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, _ := io.Copy(io.Discard, c)
	if n > int64(len(data)) {
		t.Fatalf("read %d bytes: the whole blob came after the client stalled for %s", n, 3*testStall)
	}
}
