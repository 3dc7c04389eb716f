package pgcluster

import (
	"context"
	"net"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestStartAttachesToARunningServer: a second Start on the directory of a
// running server (`antaca demo` while `make run` is up) attaches to it
// instead of removing its lock file, which would make that server shut
// down; stopping the attached Cluster leaves the server running.
func TestStartAttachesToARunningServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	dir, err := TempDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx := context.Background()
	first, err := Start(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Stop()
	pid, ok := livePostmaster(first.DataDir())
	if !ok || pid != first.Processes()[0] {
		t.Fatalf("livePostmaster: %d %v, want the running postmaster %d", pid, ok, first.Processes()[0])
	}

	second, err := Start(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatalf("second start on a running server: %v", err)
	}
	if p := second.Processes(); p != nil {
		t.Errorf("attached cluster owns processes %v, want none", p)
	}
	if err := second.Stop(); err != nil {
		t.Fatal(err)
	}
	if again, ok := livePostmaster(first.DataDir()); !ok || again != pid {
		t.Fatalf("after the attached cluster stopped: postmaster %d %v, want %d still running", again, ok, pid)
	}
	conn, err := pgx.Connect(ctx, first.URL("postgres"))
	if err != nil {
		t.Fatalf("the first server no longer answers: %v", err)
	}
	defer conn.Close(ctx)
	var one int
	if err := conn.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1: %d %v", one, err)
	}

	// Once the server has stopped, its pid file (if left) is stale and a
	// new Start runs a server of its own.
	first.Stop()
	third, err := Start(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatalf("start after the server stopped: %v", err)
	}
	defer third.Stop()
	if p := third.Processes(); len(p) == 0 {
		t.Error("a start on a stopped directory owns no server")
	}
}

// TestAttachFindsThePort: a command started while `make run -pg-port N`
// is up, with another -pg-port (the default), connects to the port the
// running server listens on, which it reads from postmaster.pid.
func TestAttachFindsThePort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	dir, err := TempDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	first, err := Start(ctx, Config{Dir: dir, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Stop()
	second, err := Start(ctx, Config{Dir: dir, Port: port + 1})
	if err != nil {
		t.Fatalf("attach with another port: %v", err)
	}
	defer second.Stop()
	if second.Port() != port || second.URL("postgres") != first.URL("postgres") {
		t.Fatalf("attached cluster: port %d url %s, want %d %s", second.Port(), second.URL("postgres"), port, first.URL("postgres"))
	}
}
