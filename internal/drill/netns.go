package drill

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Net is a private network of Linux network namespaces for a drill: one
// bridge on the host, osb<pid>, holding 10.77.X.1/24, and one namespace per
// member, osd<pid>-<i>, joined to the bridge by a veth pair (osv<pid>h<i>
// on the host, osv<pid>n<i> inside) and holding 10.77.X.(10+i). Members
// reach each other and the host over the bridge (layer 2: no forwarding,
// no NAT, no host firewall rule), so the host's drill reaches every
// member's HTTP port and every member reaches a backend bound to the
// bridge address. Names carry the drill's pid, X is a subnet no interface
// uses yet: two drills, or a drill and CI, do not collide.
//
// It needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN), ip (iproute2) and, for
// Cut, iptables. Close removes everything and is idempotent; NewNet also
// removes what a drill killed before its Close left behind, and Close runs
// on SIGINT and SIGTERM.
type Net struct {
	tag    string // the pid
	subnet int    // X of 10.77.X.0/24
	n      int

	mu       sync.Mutex
	closed   bool
	onSignal []func() // what Close stops first (the members)
	stopSig  chan struct{}
}

// ErrNeedRoot is returned by NewNet when the drill cannot create network
// namespaces.
var ErrNeedRoot = errors.New("the partition drill creates network namespaces, veth pairs and iptables rules: run it as root (CAP_NET_ADMIN and CAP_SYS_ADMIN)")

// NewNet creates the bridge and n namespaces.
func NewNet(n int) (*Net, error) {
	if os.Geteuid() != 0 {
		return nil, ErrNeedRoot
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			pkg := map[string]string{"ip": "iproute2", "iptables": "iptables"}[tool]
			return nil, fmt.Errorf("the partition drill needs %s on PATH (apt-get install -y %s): %w", tool, pkg, err)
		}
	}
	sweepStale()
	subnet, err := freeSubnet()
	if err != nil {
		return nil, err
	}
	nt := &Net{tag: strconv.Itoa(os.Getpid()), subnet: subnet, n: n, stopSig: make(chan struct{})}
	if err := nt.create(); err != nil {
		nt.Close()
		if strings.Contains(err.Error(), "Operation not permitted") {
			return nil, fmt.Errorf("%w: %v", ErrNeedRoot, err)
		}
		return nil, err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		select {
		case s := <-sig:
			fmt.Fprintf(os.Stderr, "drill: %v: removing the drill's namespaces, bridge and processes\n", s)
			nt.Close()
			os.Exit(130)
		case <-nt.stopSig:
			signal.Stop(sig)
		}
	}()
	return nt, nil
}

func (nt *Net) create() error {
	br := nt.Bridge()
	steps := [][]string{
		{"link", "add", br, "type", "bridge"},
		{"addr", "add", nt.HostAddr() + "/24", "dev", br},
		{"link", "set", br, "up"},
	}
	for i := range nt.n {
		ns, h, in := nt.Namespace(i), nt.veth(i, "h"), nt.veth(i, "n")
		steps = append(steps,
			[]string{"netns", "add", ns},
			[]string{"link", "add", h, "type", "veth", "peer", "name", in},
			[]string{"link", "set", in, "netns", ns},
			[]string{"link", "set", h, "master", br},
			[]string{"link", "set", h, "up"},
			[]string{"-n", ns, "addr", "add", nt.Addr(i) + "/24", "dev", in},
			[]string{"-n", ns, "link", "set", in, "up"},
			[]string{"-n", ns, "link", "set", "lo", "up"},
		)
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			return err
		}
	}
	return nil
}

// Bridge is the host-side bridge's name.
func (nt *Net) Bridge() string { return "osb" + nt.tag }

// Namespace is member i's namespace (i from 0).
func (nt *Net) Namespace(i int) string { return "osd" + nt.tag + "-" + strconv.Itoa(i) }

func (nt *Net) veth(i int, side string) string { return "osv" + nt.tag + side + strconv.Itoa(i) }

// HostAddr is the host's address on the bridge, where a backend listens.
func (nt *Net) HostAddr() string { return fmt.Sprintf("10.77.%d.1", nt.subnet) }

// Addr is member i's address in its namespace.
func (nt *Net) Addr(i int) string { return fmt.Sprintf("10.77.%d.%d", nt.subnet, 10+i) }

// Command returns the command line that runs bin with args in member i's
// namespace (ip netns exec execs bin: the process is bin itself, so
// signals reach it and Pdeathsig holds).
func (nt *Net) Command(i int, bin string, args ...string) (string, []string) {
	ip, _ := exec.LookPath("ip")
	return ip, append([]string{"netns", "exec", nt.Namespace(i), bin}, args...)
}

// OnClose registers f (stopping processes in the namespaces) to run first
// when Close runs, also on SIGINT and SIGTERM.
func (nt *Net) OnClose(f func()) {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	nt.onSignal = append(nt.onSignal, f)
}

const cutChain = "ORDERSYSTEM_DRILL_CUT"

// Cut drops, inside member i's namespace, every TCP segment between member
// i's node-to-node port and the other members and between member i and the
// other members' node-to-node ports, in both directions (port is the
// node-to-node port, the same on every member); the backend and HTTP stay
// reachable. Heal removes the rules.
func (nt *Net) Cut(i, port int) error {
	ns := nt.Namespace(i)
	p := strconv.Itoa(port)
	rules := [][]string{{"-N", cutChain}, {"-I", "INPUT", "-j", cutChain}, {"-I", "OUTPUT", "-j", cutChain}}
	for j := range nt.n {
		if j == i {
			continue
		}
		peer := nt.Addr(j)
		rules = append(rules,
			[]string{"-A", cutChain, "-p", "tcp", "-s", peer, "--dport", p, "-j", "DROP"}, // to my port
			[]string{"-A", cutChain, "-p", "tcp", "-d", peer, "--sport", p, "-j", "DROP"}, // from my port
			[]string{"-A", cutChain, "-p", "tcp", "-d", peer, "--dport", p, "-j", "DROP"}, // to theirs
			[]string{"-A", cutChain, "-p", "tcp", "-s", peer, "--sport", p, "-j", "DROP"}, // from theirs
		)
	}
	for _, r := range rules {
		if err := runCmd("ip", append([]string{"netns", "exec", ns, "iptables", "-w"}, r...)...); err != nil {
			return fmt.Errorf("cut member %d: %w", i, err)
		}
	}
	return nil
}

// Heal removes the rules of Cut from member i's namespace.
func (nt *Net) Heal(i int) error {
	ns := nt.Namespace(i)
	var first error
	for _, r := range [][]string{{"-D", "INPUT", "-j", cutChain}, {"-D", "OUTPUT", "-j", cutChain}, {"-F", cutChain}, {"-X", cutChain}} {
		if err := runCmd("ip", append([]string{"netns", "exec", ns, "iptables", "-w"}, r...)...); err != nil && first == nil {
			first = fmt.Errorf("heal member %d: %w", i, err)
		}
	}
	return first
}

// Close stops what OnClose registered, then deletes the namespaces (their
// iptables rules and veth ends go with them) and the bridge. It is
// idempotent.
func (nt *Net) Close() {
	nt.mu.Lock()
	if nt.closed {
		nt.mu.Unlock()
		return
	}
	nt.closed = true
	fs := nt.onSignal
	nt.mu.Unlock()
	for k := len(fs) - 1; k >= 0; k-- {
		fs[k]()
	}
	close(nt.stopSig)
	for i := range nt.n {
		_ = ipCmd("netns", "del", nt.Namespace(i))
		_ = ipCmd("link", "del", nt.veth(i, "h")) // gone with the namespace unless a process still holds it
	}
	_ = ipCmd("link", "del", nt.Bridge())
}

var staleNS = regexp.MustCompile(`^osd(\d+)-\d+$`)

// sweepStale removes the namespaces and bridges of drills that died
// without Close (kill -9): those whose pid runs no more.
func sweepStale() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	dead := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		m := staleNS.FindStringSubmatch(f[0])
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			_ = ipCmd("netns", "del", f[0])
			dead[m[1]] = true
		}
	}
	for pid := range dead {
		_ = ipCmd("link", "del", "osb"+pid)
	}
}

// freeSubnet picks X of 10.77.X.0/24 that no interface's address is in.
func freeSubnet() (int, error) {
	out, err := exec.Command("ip", "-o", "-4", "addr").Output()
	if err != nil {
		return 0, fmt.Errorf("ip -o -4 addr: %w", err)
	}
	start := os.Getpid() % 250
	for k := range 250 {
		x := (start + k) % 250
		if !strings.Contains(string(out), fmt.Sprintf(" 10.77.%d.", x)) {
			return x, nil
		}
	}
	return 0, errors.New("no free subnet in 10.77.0.0/16")
}

func ipCmd(args ...string) error { return runCmd("ip", args...) }

func runCmd(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
