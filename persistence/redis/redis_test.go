package redis_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ordersystem/ordersystem/internal/poll"
	"github.com/ordersystem/ordersystem/internal/redisconn"
	"github.com/ordersystem/ordersystem/internal/testservers"
	"github.com/ordersystem/ordersystem/persistence"
	"github.com/ordersystem/ordersystem/persistence/journaltest"
	"github.com/ordersystem/ordersystem/persistence/redis"
)

// uniquePrefix returns a key prefix no other test uses.
func uniquePrefix(t testing.TB) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "ordersystem-test:" + hex.EncodeToString(b[:]) + ":"
}

// deleteKeys removes every key under prefix (test cleanup on a shared
// server or cluster: addr may be a comma-separated list of seeds).
func deleteKeys(t testing.TB, addr, prefix string) {
	t.Helper()
	c, err := redisconn.New(redisconn.Options{Addr: addr})
	if err != nil {
		t.Errorf("cleanup of %s*: %v", prefix, err)
		return
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := redis.DeleteKeys(ctx, c, prefix); err != nil {
		t.Logf("cleanup of %s*: %v", prefix, err)
	}
}

// newBackend opens a backend on addr under a fresh prefix whose keys are
// deleted when the test ends.
func newBackend(t testing.TB, addr string, opts redis.Options) *redis.Backend {
	t.Helper()
	opts.Addr = addr
	opts.Prefix = uniquePrefix(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := redis.New(ctx, opts)
	if err != nil {
		t.Fatalf("redis.New(%s): %v", addr, err)
	}
	t.Cleanup(func() {
		_ = b.Close()
		deleteKeys(t, addr, opts.Prefix)
	})
	return b
}

// reopener returns the suite's Reopen for addr: backends on one fresh
// prefix, each with the partition count asked for.
func reopener(addr string, opts redis.Options) func(t *testing.T) func(int) (persistence.Backend, error) {
	return func(t *testing.T) func(int) (persistence.Backend, error) {
		prefix := uniquePrefix(t)
		t.Cleanup(func() { deleteKeys(t, addr, prefix) })
		return func(n int) (persistence.Backend, error) {
			o := opts
			o.Addr, o.Prefix, o.Partitions = addr, prefix, n
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			b, err := redis.New(ctx, o)
			if err != nil {
				return nil, err // a nil *Backend must not become a non-nil interface
			}
			return b, nil
		}
	}
}

func TestContract(t *testing.T) {
	addr := testservers.Redis(t)
	journaltest.Run(t, func(t *testing.T) persistence.Backend {
		return newBackend(t, addr, redis.Options{})
	}, journaltest.Features{Reopen: reopener(addr, redis.Options{})})
}

// TestContractCluster runs the suite on the shared private Redis Cluster
// (3 primaries, 1 replica each): the partitions spread over the shards,
// each append is one script in its partition's slot.
func TestContractCluster(t *testing.T) {
	seeds := redis.SharedCluster.Get(t).Seeds()
	journaltest.Run(t, func(t *testing.T) persistence.Backend {
		return newBackend(t, seeds, redis.Options{})
	}, journaltest.Features{LargeStream: 2000, Reopen: reopener(seeds, redis.Options{})})
}

// TestContractClusterWaitReplicas runs the suite on the shared cluster
// with WaitReplicas 1, which splits each group commit by primary so that
// WAIT runs on the connection that wrote.
func TestContractClusterWaitReplicas(t *testing.T) {
	seeds := redis.SharedCluster.Get(t).Seeds()
	opts := redis.Options{WaitReplicas: 1, WaitTimeout: 1500 * time.Millisecond}
	journaltest.Run(t, func(t *testing.T) persistence.Backend {
		return newBackend(t, seeds, opts)
	}, journaltest.Features{LargeStream: 2000, Reopen: reopener(seeds, opts)})
}

// TestContractSentinel runs the suite through a Sentinel client (the
// failover client redisconn.New makes for a master name, as a node with
// --redis-master-name shares between its backends) of a private primary
// that the Sentinel watches, restart included. The backends name the
// primary in messages, and their keys are deleted there.
func TestContractSentinel(t *testing.T) {
	srv := testservers.StartRedis(t)
	sentinel := testservers.StartRedisSentinel(t, srv.Addr(), "ordersystem-test")
	rdb, err := redisconn.New(redisconn.Options{Addr: sentinel, MasterName: "ordersystem-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	opts := redis.Options{Client: rdb}
	journaltest.Run(t, func(t *testing.T) persistence.Backend {
		return newBackend(t, srv.Addr(), opts)
	}, journaltest.Features{
		LargeStream: 2000,
		Reopen:      reopener(srv.Addr(), opts),
		Restart:     func(t *testing.T) { srv.Restart() },
	})
}

// TestContractWithoutGroupCommit runs the suite with MaxBatch=1 (each
// append on its own connection).
func TestContractWithoutGroupCommit(t *testing.T) {
	addr := testservers.Redis(t)
	journaltest.Run(t, func(t *testing.T) persistence.Backend {
		return newBackend(t, addr, redis.Options{MaxBatch: 1})
	}, journaltest.Features{LargeStream: 2000})
}

// TestContractPrivateServer runs the suite, restart included, on a private
// redis-server (appendonly yes, appendfsync always) that the suite kills
// and starts again.
func TestContractPrivateServer(t *testing.T) {
	srv := testservers.StartRedis(t)
	journaltest.Run(t, func(t *testing.T) persistence.Backend {
		return newBackend(t, srv.Addr(), redis.Options{})
	}, journaltest.Features{
		LargeStream: 2000,
		Restart:     func(t *testing.T) { srv.Restart() },
	})
}

func TestUnreachableServerFailsFast(t *testing.T) {
	addr := "127.0.0.1:" + strconv.Itoa(testservers.FreePort(t))
	for _, a := range []string{addr, "redis://user:secret@" + addr + "/1"} {
		start := time.Now()
		b, err := redis.New(context.Background(), redis.Options{Addr: a})
		took := time.Since(start)
		if err == nil {
			_ = b.Close()
			t.Fatalf("New(%s) succeeded against a closed port", a)
		}
		if !errors.Is(err, persistence.ErrUnavailable) {
			t.Fatalf("New(%s): %v, want ErrUnavailable", a, err)
		}
		if !strings.Contains(err.Error(), addr) {
			t.Fatalf("error %q does not name the address %s", err, addr)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Fatalf("error %q shows the password", err)
		}
		if took > 5*time.Second {
			t.Fatalf("New took %s to fail, want < 5 s", took)
		}
	}
}

// TestServerGoneFailsFast stops a private server under an open backend:
// every call returns ErrUnavailable within seconds, and the backend works
// again once the server is back.
func TestServerGoneFailsFast(t *testing.T) {
	srv := testservers.StartRedis(t)
	b := newBackend(t, srv.Addr(), redis.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := b.Append(ctx, "gone", 0, []persistence.Record{{Type: "Ev", Data: []byte("1")}}); err != nil {
		t.Fatalf("append: %v", err)
	}
	srv.Stop()
	calls := map[string]func() error{
		"append": func() error {
			_, err := b.Append(ctx, "gone", 1, []persistence.Record{{Type: "Ev", Data: []byte("2")}})
			return err
		},
		"load":      func() error { _, err := b.Load(ctx, "gone", 0); return err },
		"read all":  func() error { _, err := b.Log(0).ReadAll(ctx, 0, 10); return err },
		"head":      func() error { _, err := b.Log(0).Head(ctx); return err },
		"ping":      func() error { return b.Ping(ctx) },
		"save snap": func() error { return b.SaveSnapshot(ctx, persistence.Snapshot{StreamID: "gone", Version: 1}) },
	}
	for name, call := range calls {
		start := time.Now()
		err := call()
		if !errors.Is(err, persistence.ErrUnavailable) {
			t.Fatalf("%s with the server stopped: %v, want ErrUnavailable", name, err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("%s took %s to fail", name, took)
		}
	}
	srv.Start()
	waitFor(t, 20*time.Second, func() error { return b.Ping(ctx) })
	if v, err := b.Append(ctx, "gone", 1, []persistence.Record{{Type: "Ev", Data: []byte("2")}}); err != nil || v != 2 {
		t.Fatalf("append after the server came back: %d, %v", v, err)
	}
}

// TestSharedClient hands two backends one client: both work through it,
// and closing them leaves it open for its owner.
func TestSharedClient(t *testing.T) {
	addr := testservers.Redis(t)
	c, err := redisconn.New(redisconn.Options{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var backends []*redis.Backend
	for range 2 {
		prefix := uniquePrefix(t)
		t.Cleanup(func() { deleteKeys(t, addr, prefix) })
		b, err := redis.New(ctx, redis.Options{Client: c, Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if d := b.Describe(); d.Address != addr {
			t.Fatalf("address %q, want the client's %q", d.Address, addr)
		}
		if v, err := b.Append(ctx, "shared", 0, []persistence.Record{{Type: "Ev"}}); err != nil || v != 1 {
			t.Fatalf("append through a shared client: %d, %v", v, err)
		}
		backends = append(backends, b)
	}
	for _, b := range backends {
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Log(0).Head(ctx); !errors.Is(err, persistence.ErrClosed) {
			t.Fatalf("head after Close: %v, want ErrClosed", err)
		}
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("the shared client after both backends closed: %v (a backend closed it)", err)
	}
}

func TestDescribe(t *testing.T) {
	addr := testservers.Redis(t)
	b := newBackend(t, addr, redis.Options{})
	d := b.Describe()
	if d.Name != "redis" || d.Address != addr {
		t.Fatalf("describe: %+v", d)
	}
	if !strings.Contains(d.Durability, "appendonly=") && !strings.HasPrefix(d.Durability, "unknown") {
		t.Fatalf("durability %q does not state appendonly", d.Durability)
	}
	t.Logf("shared server: %+v", d)
}

// TestPasswordNeverShown connects with passwords (requirepass and an ACL
// user on a private server) and checks that neither Describe nor errors
// show them.
func TestPasswordNeverShown(t *testing.T) {
	srv := testservers.StartRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	defer admin.Close()
	const pw = "s3cr3t-pw"
	if err := admin.Do(ctx, "ACL", "SETUSER", "alice", "on", ">"+pw, "~*", "+@all").Err(); err != nil {
		t.Fatalf("acl setuser: %v", err)
	}
	if err := admin.ConfigSet(ctx, "requirepass", pw).Err(); err != nil {
		t.Fatalf("config set requirepass: %v", err)
	}
	for _, c := range []struct{ url, want string }{
		{"redis://:" + pw + "@" + srv.Addr(), "redis://" + srv.Addr()},
		{"redis://:" + pw + "@" + srv.Addr() + "/0", "redis://" + srv.Addr()},
		{"redis://alice:" + pw + "@" + srv.Addr() + "/2", "redis://" + srv.Addr() + "/2"},
	} {
		b, err := redis.New(ctx, redis.Options{Addr: c.url, Prefix: uniquePrefix(t)})
		if err != nil {
			t.Fatalf("New with a password: %v", err)
		}
		d := b.Describe()
		_ = b.Close()
		if d.Address != c.want {
			t.Fatalf("address %q, want %q", d.Address, c.want)
		}
		if strings.Contains(d.Address+d.Durability, pw) || strings.Contains(d.Address, "alice") {
			t.Fatalf("describe shows credentials: %+v", d)
		}
	}
	_, err := redis.New(ctx, redis.Options{Addr: "redis://alice:wrong-" + pw + "@" + srv.Addr()})
	if err == nil {
		t.Fatal("New with a wrong password succeeded")
	}
	if strings.Contains(err.Error(), pw) {
		t.Fatalf("error shows the password: %v", err)
	}
	if !strings.Contains(err.Error(), srv.Addr()) {
		t.Fatalf("error %q does not name the server", err)
	}
	t.Logf("wrong password: %v", err)
}

// TestDescribePrivateServer checks the durability text against a server
// whose configuration the test knows.
func TestDescribePrivateServer(t *testing.T) {
	srv := testservers.StartRedis(t) // appendonly yes, appendfsync always
	b := newBackend(t, srv.Addr(), redis.Options{})
	if d := b.Describe().Durability; !strings.HasPrefix(d, "appendonly=yes appendfsync=always") {
		t.Fatalf("durability %q", d)
	}
}

// TestWaitReplicas makes a second private server a replica of the first:
// WaitReplicas=1 succeeds, WaitReplicas=2 fails as unavailable (the write
// happened but is not replicated enough).
func TestWaitReplicas(t *testing.T) {
	primary := testservers.StartRedis(t)
	replica := testservers.StartRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc := goredis.NewClient(&goredis.Options{Addr: replica.Addr()})
	defer rc.Close()
	host, port, _ := strings.Cut(primary.Addr(), ":")
	if err := rc.Do(ctx, "REPLICAOF", host, port).Err(); err != nil {
		t.Fatalf("replicaof: %v", err)
	}
	pc := goredis.NewClient(&goredis.Options{Addr: primary.Addr()})
	defer pc.Close()
	waitFor(t, 20*time.Second, func() error {
		info, err := pc.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "connected_slaves:1") || !strings.Contains(info, "state=online") {
			return errors.New("replica not online yet")
		}
		return nil
	})

	// A generous bound: the replica acknowledges within milliseconds, but a
	// loaded CI machine has been seen to take more than 500 ms.
	one := newBackend(t, primary.Addr(), redis.Options{WaitReplicas: 1, WaitTimeout: 1500 * time.Millisecond})
	if !strings.Contains(one.Describe().Durability, "waits for 1 replica") {
		t.Fatalf("durability %q does not mention WAIT", one.Describe().Durability)
	}
	if v, err := one.Append(ctx, "w", 0, []persistence.Record{{Type: "Ev", Data: []byte("x")}}); err != nil || v != 1 {
		t.Fatalf("append with WAIT 1: %d, %v", v, err)
	}
	two := newBackend(t, primary.Addr(), redis.Options{WaitReplicas: 2, WaitTimeout: 200 * time.Millisecond})
	_, err := two.Append(ctx, "w", 0, []persistence.Record{{Type: "Ev", Data: []byte("x")}})
	if !errors.Is(err, persistence.ErrUnavailable) || !strings.Contains(err.Error(), "1 of 2 replicas") {
		t.Fatalf("append with WAIT 2 and one replica: %v, want ErrUnavailable naming 1 of 2 replicas", err)
	}
	// It was written on the primary: a retry at the same version conflicts.
	_, err = two.Append(ctx, "w", 0, []persistence.Record{{Type: "Ev", Data: []byte("x")}})
	if !errors.Is(err, persistence.ErrVersionConflict) {
		t.Fatalf("retry after unreplicated append: %v, want a conflict", err)
	}
	// Sync confirms what the replicas WaitReplicas asks for have, and
	// nothing without WaitReplicas.
	if err := one.Sync(ctx, "w"); err != nil {
		t.Fatalf("sync with WAIT 1 and one replica: %v", err)
	}
	if err := two.Sync(ctx, "w"); !errors.Is(err, persistence.ErrUnavailable) || !strings.Contains(err.Error(), "1 of 2 replicas") {
		t.Fatalf("sync with WAIT 2 and one replica: %v, want ErrUnavailable naming 1 of 2 replicas", err)
	}
	if err := newBackend(t, primary.Addr(), redis.Options{}).Sync(ctx, "w"); err != nil {
		t.Fatalf("sync without WaitReplicas: %v", err)
	}
}

func TestScriptsReloadedAfterFlush(t *testing.T) {
	srv := testservers.StartRedis(t)
	b := newBackend(t, srv.Addr(), redis.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	defer c.Close()
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatalf("script flush: %v", err)
	}
	if v, err := b.Append(ctx, "s", 0, []persistence.Record{{Type: "Ev"}}); err != nil || v != 1 {
		t.Fatalf("append after SCRIPT FLUSH: %d, %v", v, err)
	}
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatalf("script flush: %v", err)
	}
	if rs, err := b.Load(ctx, "s", 0); err != nil || len(rs) != 1 {
		t.Fatalf("load after SCRIPT FLUSH: %d records, %v", len(rs), err)
	}
	if err := b.SaveSnapshot(ctx, persistence.Snapshot{StreamID: "s", Version: 1}); err != nil {
		t.Fatalf("snapshot after SCRIPT FLUSH: %v", err)
	}
}

// waitFor polls f until it returns nil or the time is up.
func waitFor(t testing.TB, total time.Duration, f func() error) {
	t.Helper()
	poll.Eventually(t, total, f)
}

// TestUnpartitionedJournalRefused: a prefix that holds a journal of the
// old layout (<prefix>log, no meta key) is refused at open, naming the
// key, and nothing is written under it.
func TestUnpartitionedJournalRefused(t *testing.T) {
	addr := testservers.Redis(t)
	prefix := uniquePrefix(t)
	t.Cleanup(func() { deleteKeys(t, addr, prefix) })
	raw := goredis.NewClient(&goredis.Options{Addr: addr})
	defer raw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := raw.XAdd(ctx, &goredis.XAddArgs{Stream: prefix + "log", ID: "0-1", Values: []any{"s", "o1", "v", "1", "t", "OrderCreated", "d", ""}}).Err(); err != nil {
		t.Fatal(err)
	}
	b, err := redis.New(ctx, redis.Options{Addr: addr, Prefix: prefix})
	if err == nil {
		_ = b.Close()
		t.Fatal("New opened a prefix that holds an unpartitioned journal")
	}
	if !errors.Is(err, persistence.ErrInvalidArgument) || !strings.Contains(err.Error(), prefix+"log") || !strings.Contains(err.Error(), "unpartitioned") {
		t.Fatalf("New on an unpartitioned journal: %v, want ErrInvalidArgument naming %slog", err, prefix)
	}
	if n, err := raw.Exists(ctx, prefix+"meta").Result(); err != nil || n != 0 {
		t.Fatalf("the refused open wrote the meta key (exists %d, %v)", n, err)
	}
	t.Logf("refused: %v", err)
}

// TestStoredPartitionCountUnreadable: a meta key whose count is not a
// number is reported as corrupt, not replaced.
func TestStoredPartitionCountUnreadable(t *testing.T) {
	addr := testservers.Redis(t)
	prefix := uniquePrefix(t)
	t.Cleanup(func() { deleteKeys(t, addr, prefix) })
	raw := goredis.NewClient(&goredis.Options{Addr: addr})
	defer raw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := raw.HSet(ctx, prefix+"meta", "partitions", "many").Err(); err != nil {
		t.Fatal(err)
	}
	b, err := redis.New(ctx, redis.Options{Addr: addr, Prefix: prefix})
	if err == nil {
		_ = b.Close()
		t.Fatal("New accepted partitions=many")
	}
	if !errors.Is(err, persistence.ErrCorrupt) || !strings.Contains(err.Error(), `"many"`) {
		t.Fatalf("New with partitions=many: %v, want ErrCorrupt quoting the value", err)
	}
}
