package redisconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ordersystem/ordersystem/internal/testservers"
)

func TestParseAddrAccepts(t *testing.T) {
	for _, c := range []struct {
		addr, wantAddr, user, pass string
		db                         int
		tls                        bool
	}{
		{addr: "127.0.0.1:6379", wantAddr: "127.0.0.1:6379"},
		{addr: "redis.local:7000", wantAddr: "redis.local:7000"},
		{addr: "[::1]:6380", wantAddr: "[::1]:6380"},
		{addr: ":6379", wantAddr: ":6379"},
		{addr: "redis://h:6379", wantAddr: "h:6379"},
		{addr: "redis://h", wantAddr: "h:6379"},
		{addr: "REDIS://h:1", wantAddr: "h:1"},
		{addr: "redis://user:pass@h:6390/2", wantAddr: "h:6390", user: "user", pass: "pass", db: 2},
		{addr: "redis://:only-pass@h:6390/0", wantAddr: "h:6390", pass: "only-pass"},
		{addr: "redis://u:p,q@h:1", wantAddr: "h:1", user: "u", pass: "p,q"},
		{addr: "redis://u:p@ss@h:1", wantAddr: "h:1", user: "u", pass: "p@ss"}, // the last @ ends the user-info
		{addr: "rediss://u:p%40ss@secure.example:6380/1", wantAddr: "secure.example:6380", user: "u", pass: "p@ss", db: 1, tls: true},
		{addr: "redis://h:1/3?dial_timeout=5s", wantAddr: "h:1", db: 3},
	} {
		co, err := parseAddr(c.addr)
		if err != nil {
			t.Errorf("parseAddr(%q): %v", c.addr, err)
			continue
		}
		if co.Addr != c.wantAddr || co.Username != c.user || co.Password != c.pass || co.DB != c.db || (co.TLSConfig != nil) != c.tls {
			t.Errorf("parseAddr(%q): addr=%s user=%q pass=%q db=%d tls=%v", c.addr, co.Addr, co.Username, co.Password, co.DB, co.TLSConfig != nil)
		}
	}
}

func TestParseAddrRefuses(t *testing.T) {
	for _, c := range []struct {
		addr, want string // want: in the message
	}{
		{"", "empty"},
		{"no-port", "missing port"},
		{"h:notaport", `port "notaport"`},
		{"h:0", `port "0"`},
		{"h:65536", `port "65536"`},
		{"user:topsecret@h:6379", "needs a URL"},
		{"http://u:topsecret@h:1", `scheme "http"`},
		{"unix://topsecret@/tmp/redis.sock", `scheme "unix"`},
		{"redis://user:topsecret@h:1/x", "database"},
		{"redis://user:topsecret@h:bad", "port"},
		{"redis://user:topsecret@h:1?nosuchoption=1", "nosuchoption"},
		{"redis://%zz", "escape"},
		{"redis://[bad", "]"},
		// Malformed user-info: url.Parse quotes it, parseAddr must not.
		{"redis://user:top secret@host:6379", "user or password"},
		{"redis://:topsecret@[bad", "]"},
		{"redis://:top/secret@host:6379", "user or password"},
		{"redis://u:top%zzsecret@host:6379", "user or password"},
	} {
		_, err := parseAddr(c.addr)
		if err == nil {
			t.Errorf("parseAddr(%q) accepted", c.addr)
			continue
		}
		if !errors.Is(err, ErrInvalidAddr) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseAddr(%q) = %v, want ErrInvalidAddr saying %q", c.addr, err, c.want)
		}
		for _, secret := range []string{"topsecret", "top secret", "top/secret", "top@secret", "top%zzsecret", "secret"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("parseAddr(%q) = %v shows the password", c.addr, err)
			}
		}
	}
}

func TestClientOptions(t *testing.T) {
	co, err := Options{Addr: "redis://h:1/0?client_name=mine", Name: "theirs"}.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	if co.DialTimeout != DefaultTimeout || co.ReadTimeout != DefaultTimeout || co.WriteTimeout != DefaultTimeout || co.PoolTimeout != DefaultTimeout {
		t.Errorf("timeouts %s/%s/%s pool %s, want %s", co.DialTimeout, co.ReadTimeout, co.WriteTimeout, co.PoolTimeout, DefaultTimeout)
	}
	if co.MaxRetries != -1 || co.DialerRetries != 1 || !co.ContextTimeoutEnabled {
		t.Errorf("retries %d, dialer retries %d, context timeouts %v: want no hidden retries, one dial, context deadlines", co.MaxRetries, co.DialerRetries, co.ContextTimeoutEnabled)
	}
	if co.ClientName != "mine" {
		t.Errorf("client name %q: the URL's must win", co.ClientName)
	}
	co, err = Options{Addr: "h:1", Name: "n", ReadTimeout: time.Second, PoolSize: 3}.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	if co.ReadTimeout != time.Second || co.PoolTimeout != time.Second || co.PoolSize != 3 || co.ClientName != "n" {
		t.Errorf("read timeout %s, pool timeout %s, pool size %d, name %q", co.ReadTimeout, co.PoolTimeout, co.PoolSize, co.ClientName)
	}
}

// reply is a server error reply as go-redis returns it.
type reply string

func (r reply) Error() string { return string(r) }
func (reply) RedisError()     {}

func TestTransient(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{goredis.Nil, false},
		// Not replies: the server could not be asked or did not answer.
		{&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, true},
		{context.DeadlineExceeded, true},
		{fmt.Errorf("redis append: %w", context.Canceled), true},
		{errors.New("redis: connection pool timeout"), true},
		{goredis.ErrClosed, true},
		// Replies of a server that cannot serve now.
		{reply("LOADING Redis is loading the dataset in memory"), true},
		{reply("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."), true},
		{reply("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."), true},
		{reply("READONLY You can't write against a read only replica."), true},
		{reply("NOREPLICAS Not enough good replicas to write."), true},
		{reply("OOM command not allowed when used memory > 'maxmemory'."), true},
		{reply("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk."), true},
		{reply("TRYAGAIN Multiple keys request during rehashing of slot"), true},
		{reply("CLUSTERDOWN The cluster is down"), true},
		{reply("MOVED 3999 127.0.0.1:6381"), true},
		{reply("ASK 3999 127.0.0.1:6381"), true},
		{reply("ERR max number of clients reached"), true},
		{fmt.Errorf("wrapped: %w", reply("LOADING Redis is loading the dataset in memory")), true},
		// Refusals: the same command will be refused again.
		{reply("BUSYGROUP Consumer Group name already exists"), false},
		{reply("BUSYKEY Target key name already exists."), false},
		{reply("WRONGTYPE Operation against a key holding the wrong kind of value"), false},
		{goredis.ErrNoScript, false},
		{reply("NOAUTH Authentication required."), false},
		{reply("WRONGPASS invalid username-password pair or user is disabled."), false},
		{reply("NOPERM this user has no permissions to run the 'xadd' command"), false},
		{reply("ERR syntax error"), false},
		{reply("ERR user_script:1: Script attempted to access nonexistent global variable 'x'"), false},
		{reply("OOMX not a code we know"), false},
		{reply("LOADINGX not a code we know"), false},
	} {
		if got := Transient(c.err); got != c.want {
			t.Errorf("Transient(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestTopologySuspect(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{goredis.Nil, false},
		{&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, true},
		{context.DeadlineExceeded, true},
		{fmt.Errorf("redis append: %w", context.Canceled), false}, // the caller gave up
		{reply("CLUSTERDOWN The cluster is down"), true},
		{reply("READONLY You can't write against a read only replica."), true},
		{reply("MOVED 3999 127.0.0.1:6381"), false}, // go-redis follows and reloads
		{reply("ASK 3999 127.0.0.1:6381"), false},
		{reply("WRONGTYPE Operation against a key holding the wrong kind of value"), false},
	} {
		if got := topologySuspect(c.err); got != c.want {
			t.Errorf("topologySuspect(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// TestAgainstServer runs New against the shared Redis: the name reaches
// CLIENT LIST, and real refusals are classified as such.
func TestAgainstServer(t *testing.T) {
	addr := testservers.Redis(t)
	c, err := New(Options{Addr: addr, Name: "redisconn-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if name, err := c.ClientGetName(ctx).Result(); err != nil || name != "redisconn-test" {
		t.Fatalf("CLIENT GETNAME = %q, %v", name, err)
	}
	if got := ServerAddr(c); got != addr {
		t.Fatalf("ServerAddr = %q, want %q", got, addr)
	}
	key := fmt.Sprintf("ordersystem-test:redisconn:%d", time.Now().UnixNano())
	defer c.Del(context.Background(), key)
	if err := c.XGroupCreateMkStream(ctx, key, "g", "$").Err(); err != nil {
		t.Fatal(err)
	}
	err = c.XGroupCreateMkStream(ctx, key, "g", "$").Err()
	if err == nil || Transient(err) {
		t.Fatalf("second XGROUP CREATE: %v, Transient %v: want a refusal", err, Transient(err))
	}
	err = c.LPush(ctx, key, "x").Err()
	if err == nil || Transient(err) {
		t.Fatalf("LPUSH on a stream: %v, Transient %v: want a refusal", err, Transient(err))
	}
	closed := testservers.FreePort(t)
	d, err := New(Options{Addr: fmt.Sprintf("127.0.0.1:%d", closed)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Ping(ctx).Err(); !Transient(err) {
		t.Fatalf("ping of a closed port: %v, want a transient error", err)
	}
	if got := ServerAddr(struct{ goredis.UniversalClient }{c}); got != "" {
		t.Fatalf("ServerAddr of another kind of client = %q, want \"\"", got)
	}
}

func TestListsAccepted(t *testing.T) {
	co, err := Options{Addr: "redis://u:pw@a:7000?dial_timeout=3s, redis://u:pw@b:7001,redis://u:pw@c:7002/0", Name: "n"}.ClusterOptions()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(co.Addrs, ",") != "a:7000,b:7001,c:7002" || co.Username != "u" || co.Password != "pw" || co.ClientName != "n" {
		t.Fatalf("cluster options: addrs %v user %q pass %q name %q", co.Addrs, co.Username, co.Password, co.ClientName)
	}
	if co.DialTimeout != DefaultTimeout || co.MaxRetries != -1 || co.DialerRetries != 1 || !co.ContextTimeoutEnabled {
		t.Fatalf("cluster options: dial %s retries %d dialer retries %d context %v", co.DialTimeout, co.MaxRetries, co.DialerRetries, co.ContextTimeoutEnabled)
	}
	co, err = Options{Addr: "rediss://h1.example:6380,rediss://h2.example:6380"}.ClusterOptions()
	if err != nil {
		t.Fatal(err)
	}
	if co.TLSConfig == nil || co.TLSConfig.ServerName != "" {
		t.Fatalf("TLS cluster: %+v, want TLS with the server name left to each node's host", co.TLSConfig)
	}
	fo, err := Options{Addr: "redis://:pw@s1:26379/2,redis://:pw@s2:26379/2", MasterName: "mymaster"}.FailoverOptions()
	if err != nil {
		t.Fatal(err)
	}
	if fo.MasterName != "mymaster" || strings.Join(fo.SentinelAddrs, ",") != "s1:26379,s2:26379" || fo.DB != 2 || fo.Password != "pw" || fo.SentinelPassword != "" {
		t.Fatalf("failover options: %+v", fo)
	}
	for _, c := range []struct {
		o    Options
		kind string
	}{
		{Options{Addr: "h:1"}, "standalone"},
		{Options{Addr: "h:1,h:2"}, "cluster"},
		{Options{Addr: "h:1", MasterName: "m"}, "sentinel"},
	} {
		if got := c.o.Kind(); got != c.kind {
			t.Fatalf("Kind(%+v) = %s, want %s", c.o, got, c.kind)
		}
	}
}

func TestListsRefused(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{Addr: "a:1,,b:2"}, "item 2 of the list is empty"},
		{Options{Addr: "a:1,"}, "item 2 of the list is empty"},
		{Options{Addr: "a:1,redis://b:2"}, "item 2 is redis:// but item 1 is host:port"},
		{Options{Addr: "redis://a:1,rediss://b:2"}, "item 2 is rediss://"},
		{Options{Addr: "redis://a:1/2,redis://b:2/2"}, "item 1 selects database 2"},
		{Options{Addr: "redis://:topsecret@a:1,redis://:other@b:2"}, "another user or password"},
		{Options{Addr: "redis://a:1,redis://b:2?dial_timeout=1s"}, "query options"},
		{Options{Addr: "a:1,b:notaport"}, "item 2"},
		{Options{Addr: "redis://:topsecret@a:1/1,redis://:topsecret@b:2/2", MasterName: "m"}, "item 2 selects database 2"},
		{Options{Addr: "", MasterName: "m"}, "item 1 of the list is empty"},
	} {
		_, err := New(c.o)
		if err == nil || !errors.Is(err, ErrInvalidAddr) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v): %v, want an ErrInvalidAddr about %q", c.o, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), "topsecret") {
			t.Errorf("error shows the password: %v", err)
		}
	}
	if _, err := (Options{Addr: "a:1,b:2"}).ClientOptions(); err == nil || !strings.Contains(err.Error(), "list of addresses") {
		t.Errorf("ClientOptions of a list: %v, want a refusal", err)
	}
	if _, err := (Options{Addr: "a:1", MasterName: "m"}).ClientOptions(); err == nil || !strings.Contains(err.Error(), "Sentinel") {
		t.Errorf("ClientOptions with a master name: %v, want a refusal", err)
	}
}

// TestClusterAndSentinelClients makes a cluster client from a private
// cluster's seeds and a Sentinel client from a private Sentinel, and
// writes through both.
func TestClusterAndSentinelClients(t *testing.T) {
	cluster := testservers.StartRedisCluster(t, 3, 0)
	primary := testservers.StartRedis(t)
	sentinel := testservers.StartRedisSentinel(t, primary.Addr(), "ostest")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range []struct {
		o    Options
		kind string
	}{
		{Options{Addr: cluster.Seeds(), Name: "cluster-test"}, "*redis.ClusterClient"},
		{Options{Addr: strings.Join(cluster.Addrs(), " , ")}, "*redis.ClusterClient"},
		{Options{Addr: "redis://" + sentinel, MasterName: "ostest"}, "*redis.Client"},
	} {
		cl, err := New(c.o)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%T", cl); got != c.kind {
			t.Fatalf("New(%+v) made a %s, want a %s", c.o, got, c.kind)
		}
		for i := range 20 { // keys in every slot range
			key := fmt.Sprintf("ordersystem-test:redisconn:%d:%d", time.Now().UnixNano(), i)
			if err := cl.Set(ctx, key, "v", time.Minute).Err(); err != nil {
				t.Fatalf("%s: SET %s: %v", c.kind, key, err)
			}
			if v, err := cl.Get(ctx, key).Result(); err != nil || v != "v" {
				t.Fatalf("%s: GET %s = %q, %v", c.kind, key, v, err)
			}
		}
		_ = cl.Close()
	}
	cl, _ := New(Options{Addr: cluster.Seeds()})
	defer cl.Close()
	if got := ServerAddr(cl); got != cluster.Seeds() {
		t.Fatalf("ServerAddr of a cluster client = %q, want the seeds %q", got, cluster.Seeds())
	}
}

// TestClusterClientFollowsFailover: a cluster client that only ever talks
// to one slot finds the replica that took over a killed primary within
// seconds of the failover, not at go-redis' periodic reload a minute later
// (reloadOnFailure; without it this waited 60 s).
func TestClusterClientFollowsFailover(t *testing.T) {
	cluster := testservers.StartRedisCluster(t, 3, 1)
	cl, err := New(Options{Addr: cluster.Seeds()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const key = "ordersystem-test:redisconn:failover"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.Set(ctx, key, "before", 0).Err(); err != nil {
		t.Fatal(err)
	}
	primary, err := cluster.PrimaryForKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := cluster.Kill(primary); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	var last error
	for time.Since(killed) < 20*time.Second {
		c, stop := context.WithTimeout(ctx, 300*time.Millisecond)
		last = cl.Set(c, key, "after", 0).Err()
		stop()
		if last == nil {
			t.Logf("SET answered by the promoted replica %v after the kill of %s", time.Since(killed).Round(time.Millisecond), primary)
			if took := time.Since(killed); took > 12*time.Second {
				t.Fatalf("the client needed %v to find the promoted replica (cluster-node-timeout %v)", took, testservers.RedisClusterNodeTimeout)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no SET of a key of the killed primary %s succeeded within 20s: %v", primary, last)
}
