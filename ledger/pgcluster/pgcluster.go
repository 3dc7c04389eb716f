// Package pgcluster starts and stops a local PostgreSQL cluster from the
// system's initdb and postgres binaries. It backs `make run` (a persistent
// cluster under ./.data/) and the test harness (a throwaway cluster per test
// binary). When the process runs as root the cluster runs as the postgres
// user, because initdb refuses root.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoBinaries is returned when no initdb can be found on PATH or under
// /usr/lib/postgresql/*/bin.
var ErrNoBinaries = errors.New("no PostgreSQL binaries found (install the postgresql package)")

// Config says where and how a cluster runs. The zero value is not usable:
// Dir is required.
type Config struct {
	// Dir holds the data directory (Dir/data) and, when Socket is true, the
	// Unix socket. Its path must be short (a Unix socket path has at most
	// 107 bytes) and every parent must be traversable by the cluster's user.
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 means Unix socket only.
	Port int
	// Durable keeps fsync and synchronous_commit on. Tests turn it off.
	Durable bool
	// Settings are extra postgres -c settings.
	Settings map[string]string
}

// Cluster is a running PostgreSQL server owned by this process. It is safe
// for concurrent use.
type Cluster struct {
	cfg  Config
	bin  string
	cmd  *exec.Cmd
	cred *syscall.Credential
	done chan struct{}
}

// BinDir returns the directory that holds initdb, preferring PATH, then the
// newest /usr/lib/postgresql/*/bin.
func BinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", ErrNoBinaries
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// credential returns the postgres user's credential when running as root,
// and nil otherwise.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs a postgres user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// Start initialises Dir/data when it does not exist yet and starts the
// server. The server dies with this process (parent-death signal), so a
// killed test binary leaves no cluster behind.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(cfg.Dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	c := &Cluster{cfg: cfg, bin: bin, cred: cred, done: make(chan struct{})}
	data := c.DataDir()
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil {
		if err := c.run(ctx, "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
			return nil, err
		}
	}
	if pid, ok := livePostmaster(data); ok {
		// A server of another command runs on this directory (`make run`
		// while `antaca demo` or `ledger verify` starts): removing its
		// lock file would make it shut itself down at its next check.
		// Attach to it instead; Stop leaves it running.
		// It listens where it was started, which may not be cfg.Port (a
		// `make run -pg-port` against a command with the default): the
		// port is line 4 of postmaster.pid.
		c.done = nil
		if port, ok := postmasterPort(data); ok {
			c.cfg.Port = port
		}
		if err := c.waitReady(ctx); err != nil {
			return nil, fmt.Errorf("postgres (pid %d) runs on %s but does not answer at %s: %w", pid, data, c.URL("postgres"), err)
		}
		return c, nil
	}
	os.Remove(filepath.Join(data, "postmaster.pid")) // stale: its process is gone
	args := []string{"-D", data, "-k", cfg.Dir, "-c", "max_connections=200", "-c", "shared_buffers=128MB"}
	if cfg.Port > 0 {
		args = append(args, "-c", "listen_addresses=127.0.0.1", "-p", strconv.Itoa(cfg.Port))
	} else {
		args = append(args, "-c", "listen_addresses=")
	}
	if !cfg.Durable {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	keys := make([]string, 0, len(cfg.Settings))
	for k := range cfg.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-c", k+"="+cfg.Settings[k])
	}
	logf, err := os.OpenFile(filepath.Join(cfg.Dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	c.cmd = exec.Command(filepath.Join(bin, "postgres"), args...)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
	if err := c.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	go func() { c.cmd.Wait(); logf.Close(); close(c.done) }()
	if err := c.waitReady(ctx); err != nil {
		c.Stop()
		return nil, fmt.Errorf("%w (log: %s)", err, filepath.Join(cfg.Dir, "postgres.log"))
	}
	return c, nil
}

// livePostmaster reports whether data's postmaster.pid names a running
// postgres process, and its pid.
func livePostmaster(data string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(data, "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 || pid == os.Getpid() {
		return 0, false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return 0, false
	}
	// The pid may have been reused since a crash: it must be a postgres.
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return pid, err != nil || strings.TrimSpace(string(comm)) == "postgres"
}

// postmasterPort returns the TCP port that data's running server listens
// on, from line 4 of its postmaster.pid (0 and false when the server
// listens on a Unix socket only, line 6 empty).
func postmasterPort(data string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(data, "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 6 || strings.TrimSpace(lines[5]) == "" {
		return 0, false
	}
	port, err := strconv.Atoi(strings.TrimSpace(lines[3]))
	return port, err == nil && port > 0
}

// Port is the TCP port the cluster listens on, 0 for a Unix socket only.
func (c *Cluster) Port() int { return c.cfg.Port }

// DataDir is the cluster's data directory.
func (c *Cluster) DataDir() string { return filepath.Join(c.cfg.Dir, "data") }

// Bin returns the path of one of the cluster's PostgreSQL programs, such as
// pgbench or psql.
func (c *Cluster) Bin(name string) string { return filepath.Join(c.bin, name) }

// URL returns a connection string for database db as the postgres superuser.
func (c *Cluster) URL(db string) string {
	if c.cfg.Port > 0 {
		return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.cfg.Port, db)
	}
	return fmt.Sprintf("postgres://postgres@/%s?host=%s&sslmode=disable", db, c.cfg.Dir)
}

func (c *Cluster) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-c.done:
			return errors.New("postgres exited during start")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, c.URL("postgres"))
		cancel()
		if err == nil {
			conn.Close(ctx)
			return nil
		}
	}
	return errors.New("postgres did not become ready in 60s")
}

func (c *Cluster) run(ctx context.Context, prog string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, prog), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", prog, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Stop shuts the server down (fast mode) and waits for it to exit.
func (c *Cluster) Stop() error {
	if c.cmd == nil || c.cmd.Process == nil {
		return nil
	}
	c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
	return nil
}

// Kill stops the server abruptly (SIGKILL to the postmaster), as a crash
// would; fault tests use it.
func (c *Cluster) Kill() {
	if c.cmd != nil && c.cmd.Process != nil {
		c.cmd.Process.Kill()
		<-c.done
	}
}

// Restart starts a stopped cluster again with the same configuration.
func (c *Cluster) Restart(ctx context.Context) (*Cluster, error) {
	return Start(ctx, c.cfg)
}

// TempDir makes a short directory under the system temp dir that the
// cluster's user can own; its path fits a Unix socket.
func TempDir() (string, error) {
	dir, err := os.MkdirTemp("", "antaca-pg-")
	if err != nil {
		return "", err
	}
	cred, err := credential()
	if err != nil {
		return "", err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// Processes returns the process ids of the server: the postmaster and its
// children (backends, background workers). Fault tests freeze them with
// SIGSTOP to play a database that stops answering without closing its
// connections.
func (c *Cluster) Processes() []int {
	if c.cmd == nil || c.cmd.Process == nil {
		return nil
	}
	pid := c.cmd.Process.Pid
	out := []int{pid}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, st := range stats {
		b, err := os.ReadFile(st)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			if child, err := strconv.Atoi(filepath.Base(filepath.Dir(st))); err == nil {
				out = append(out, child)
			}
		}
	}
	return out
}
