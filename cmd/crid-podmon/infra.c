// crid-podmon infra: a pod's infra process, PID 1 of the pod's shared PID
// namespace (and, for a pod in a user namespace, the process that makes
// the pod's namespaces for crid to pin). crid starts it from the sealed
// crid-podmon binary (pkg/sandbox, MakeNamespaces):
//
//	crid-podmon infra --root-fd FD --hostname NAME [--net] [--uid N]
//	    [--gid N] [--group N]... [--seccomp-fd FD]
//
// It was a Go program (crid-monitor infra) until 2026-12-03: 3 ms of
// runtime start-up before its first line, and 1.7 MB of PSS for the
// pod's life. In C it makes the empty mount crid hands it (--root-fd)
// its root and working directory: the pod's containers reach its root
// through /proc/1/root, and the host's / was there. It names the host,
// brings up lo when the pod has its own network, takes the pod's
// identity (no capabilities, no_new_privs,
// the seccomp program crid compiled when the pod asks for the runtime's
// default), says "ready" on stdout, then reaps every orphan the pod's
// containers leave until SIGTERM or SIGINT. An error is said on stdout
// in place of "ready", for crid to report.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int infra_main(int argc, char **argv);

// fail says what went wrong on stdout, where crid waits for "ready",
// and is the exit status.
static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...) {
	char msg[512] = "infra: ";
	size_t n = strlen(msg);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(msg + n, sizeof msg - n - 1, fmt, ap);
	va_end(ap);
	n += m < 0 ? 0 : (size_t)m < sizeof msg - n - 1 ? (size_t)m : sizeof msg - n - 2;
	msg[n++] = '\n';
	ssize_t w = write(1, msg, n);
	(void)w; // with no one to hear it, the status says it
	return 1;
}

int join_cgroup(const char *file); // podmon.c

// join_cgroups writes 0 to each membership file crid lists in
// _CRID_CGROUP_JOIN (nsenter.CgroupJoinEnv), v1's "tasks": done while the
// process has one thread, it spares the kernel a synchronize_rcu. On v2
// crid clones the process into its cgroup instead.
static int join_cgroups(void) {
	const char *files = getenv("_CRID_CGROUP_JOIN");
	if (files == NULL || *files == '\0')
		return 0;
	char *list = strdup(files), *save = NULL;
	if (list == NULL)
		return fail("join cgroups: %s", strerror(errno));
	for (char *p = strtok_r(list, ":", &save); p != NULL; p = strtok_r(NULL, ":", &save)) {
		int e = join_cgroup(p);
		if (e != 0) {
			free(list);
			return fail("join cgroup %s: %s", p, strerror(e));
		}
	}
	free(list);
	unsetenv("_CRID_CGROUP_JOIN");
	return 0;
}

static int loopback_up(void) {
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail("socket for lo: %s", strerror(errno));
	struct ifreq ifr = {0};
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
		close(fd);
		return fail("get lo flags: %s", strerror(errno));
	}
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0) {
		close(fd);
		return fail("bring lo up: %s", strerror(errno));
	}
	close(fd);
	return 0;
}

// read_program reads the seccomp program crid wrote to fd (a memfd).
static int read_program(int fd, struct sock_fprog *prog) {
	size_t cap = 16384, n = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (buf == NULL)
			return fail("read the seccomp program: out of memory");
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(buf);
			return fail("read the seccomp program: %s", strerror(errno));
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == cap)
			buf = realloc(buf, cap *= 2);
	}
	close(fd);
	size_t len = n / sizeof(struct sock_filter);
	if (len == 0 || len > 0xffff || n % sizeof(struct sock_filter) != 0) {
		free(buf);
		return fail("the seccomp program of %zu bytes is no BPF program", n);
	}
	prog->len = (unsigned short)len;
	prog->filter = (struct sock_filter *)buf;
	return 0;
}

// drop takes the pod's identity: an empty bounding set (while
// CAP_SETPCAP is still held), groups, gid, uid, then no capabilities at
// all (a PID 1 needs none to reap), no_new_privs, not dumpable, then
// seccomp.
static int drop(const gid_t *groups, size_t ngroups, long long uid, long long gid, struct sock_fprog *prog) {
	for (int c = 0; c <= 63; c++)
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
			return fail("drop capability %d: %s", c, strerror(errno));
	if (setgroups(ngroups, groups) < 0)
		return fail("setgroups: %s", strerror(errno));
	if (gid >= 0 && setresgid(gid, gid, gid) < 0)
		return fail("setgid: %s", strerror(errno));
	if (uid >= 0 && setresuid(uid, uid, uid) < 0)
		return fail("setuid: %s", strerror(errno));
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2] = {{0}};
	if (syscall(SYS_capset, &hdr, data) < 0)
		return fail("drop capabilities: %s", strerror(errno));
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return fail("set no_new_privs: %s", strerror(errno));
	// Not dumpable: the pod's processes (same UID, more capabilities)
	// may not ptrace it, nor open its /proc files past stat and cmdline.
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return fail("set not dumpable: %s", strerror(errno));
	if (prog->len > 0 && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog) < 0)
		return fail("load seccomp program: %s", strerror(errno));
	return 0;
}

static bool parse_id(const char *s, long long *out) {
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || *s == '\0' || *end != '\0' || v < 0 || v > 0xffffffffLL)
		return false;
	*out = v;
	return true;
}

int infra_main(int argc, char **argv) {
	static const struct option opts[] = {
		{"hostname", required_argument, NULL, 'h'}, {"net", no_argument, NULL, 'n'},
		{"uid", required_argument, NULL, 'u'},      {"gid", required_argument, NULL, 'g'},
		{"group", required_argument, NULL, 'G'},    {"seccomp-fd", required_argument, NULL, 's'},
		{"root-fd", required_argument, NULL, 'r'},  {NULL, 0, NULL, 0},
	};
	const char *hostname = "";
	bool own_net = false;
	long long uid = -1, gid = -1, v;
	gid_t *groups = NULL;
	size_t ngroups = 0;
	int seccomp_fd = -1, root_fd = -1;
	int o;
	opterr = 0; // crid gives no stderr: errors go to stdout (fail)
	// The cgroups are joined first of all.
	if (join_cgroups() != 0)
		return 1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'h': hostname = optarg; break;
		case 'n': own_net = true; break;
		case 'u':
			if (!parse_id(optarg, &uid))
				return fail("--uid %s is no user ID", optarg);
			break;
		case 'g':
			if (!parse_id(optarg, &gid))
				return fail("--gid %s is no group ID", optarg);
			break;
		case 'G':
			if (!parse_id(optarg, &v))
				return fail("--group %s is no group ID", optarg);
			if ((groups = realloc(groups, (ngroups + 1) * sizeof *groups)) == NULL)
				return fail("--group: out of memory");
			groups[ngroups++] = (gid_t)v;
			break;
		case 's':
			if (!parse_id(optarg, &v) || v < 3 || v > 1024)
				return fail("--seccomp-fd %s is no descriptor", optarg);
			seccomp_fd = (int)v;
			break;
		case 'r':
			if (!parse_id(optarg, &v) || v < 3 || v > 1024)
				return fail("--root-fd %s is no descriptor", optarg);
			root_fd = (int)v;
			break;
		default: return fail("usage: crid-podmon infra --root-fd FD --hostname NAME [--net] [--uid N] [--gid N] [--group N]... [--seccomp-fd FD]");
		}
	}
	if (optind != argc)
		return fail("unexpected argument %s", argv[optind]);
	if (root_fd < 0)
		return fail("no --root-fd: the host's / is no root for a pod's PID 1");
	struct sock_fprog prog = {0};
	if (seccomp_fd >= 0 && read_program(seccomp_fd, &prog) != 0)
		return 1;
	// Opened while the host's /dev is still reachable, for stdio after.
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0)
		return fail("open /dev/null: %s", strerror(errno));
	if (fchdir(root_fd) < 0 || chroot(".") < 0)
		return fail("enter the empty root: %s", strerror(errno));
	close(root_fd);
	if (*hostname != '\0' && sethostname(hostname, strlen(hostname)) < 0)
		return fail("set hostname: %s", strerror(errno));
	if (own_net && loopback_up() != 0)
		return 1;
	if (drop(groups, ngroups, uid, gid, &prog) != 0)
		return 1;
	free(prog.filter);
	free(groups);
	// The signals are taken synchronously: blocked, they are queued even
	// for a PID 1 that has no handler, and read by sigwaitinfo below.
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	// Tell crid the namespaces are ready to pin, and hold none of its
	// pipe, nor any other of its descriptors.
	if (write(1, "ready\n", 6) != 6)
		return 1;
	dup2(null, 0);
	dup2(null, 1);
	dup2(null, 2);
	close(null);
	for (;;) {
		int sig = sigwaitinfo(&set, NULL);
		if (sig < 0)
			continue; // EINTR
		if (sig != SIGCHLD)
			return 0;
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
}
