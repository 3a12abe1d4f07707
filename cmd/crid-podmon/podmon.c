// crid-podmon: a pod's monitor, the one process crid keeps beside each pod.
//
// It is the parent and the child subreaper of the pod's containers while
// crid may come and go: it copies their output into their logs in the CRI
// format, reopens a log on request, carries attach streams, and records
// each exit atomically in the container's bundle (exit.json), so a crid
// that was killed finds every exit when it comes back.
//
// It is C, not Go, for one reason: memory. A Go process cannot go below
// about 0.6 MB of its own (heap arenas, a stack per thread, the
// scheduler); this one is about a tenth of that, and there is one per pod
// (docs/containers.md, "Memory per pod"). What needs Go stays in Go, in
// the sealed crid-monitor binary it is handed as fd 3. A container's
// start follows the plan crid wrote in its bundle (start.json,
// executor.Launch): this process clones the init into its namespaces and
// cgroup and the init, crid-monitor's, sets the container up (the root,
// seccomp, the CVE guards) and execs it. Short-lived Go helpers do the
// rest: `start` starts a bundle without a plan (a user namespace) through
// the executor and answers with its pid (and its terminal's master, by
// SCM_RIGHTS) before it exits, which leaves the container to this
// process as subreaper; `exited` kills what a container left in its
// cgroup, reads the OOM record and answers with the exit record. This
// process itself is one epoll loop: it never blocks on a container, a
// client, an init or a helper, and it holds no state but its
// containers'.
//
// Protocol (pkg/oci/monitor): a client sends one JSON object on a line to
// the socket monitor.sock in the directory it is given, and reads one
// JSON line back; "attach" then carries frames (a stream byte, a
// big-endian length, the bytes) out and the container's stdin in.
//
//	crid-podmon DIR    (fd 3: the sealed crid-monitor binary)

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <linux/openat2.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

// clone3's arguments (linux/sched.h, which clashes with glibc's sched.h).
struct clone_args3 {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

// The namespaces a start plan may ask clone to make: the init makes the
// cgroup namespace itself, once in its cgroup.
#define PLAN_CLONE_FLAGS ((uint64_t)(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWPID))

#define SOCKET_NAME "monitor.sock"
#define EXIT_FILE "exit.json"
// A line without a newline is cut into partial lines at this length, as
// the kubelet's reader expects: a full line is tagged F, its pieces P.
#define MAX_LOG_LINE (16 << 10)
// Lines read together go out in one write of at most this much.
#define LOG_BATCH (64 << 10)
#define MAX_REQUEST (64 << 10)
#define MAX_ANSWER (64 << 10)
#define MAX_PLAN (64 << 10)
#define PLAN_FILE "start.json"
#define REQUEST_TIMEOUT_NS (60LL * 1000000000LL)
#define FRAME_STDOUT 1
#define FRAME_STDERR 2

extern char **environ;

enum kind { K_LISTEN, K_SIGNAL, K_CONN, K_STREAM, K_START, K_EXITOUT, K_CLIENT, K_STDIN };

// Every descriptor in the epoll set carries one of these.
struct watch {
	enum kind kind;
	void *p;
};

struct ctr;

struct stream {
	struct watch w;
	int fd;
	const char *name; // "stdout" or "stderr"
	unsigned char frame;
	bool terminal; // a terminal's master: its CR before LF is not logged
	struct ctr *c;
	size_t len;
	char buf[MAX_LOG_LINE];
};

struct client {
	struct watch w;
	int fd;
	struct ctr *c;
	bool paused; // its input waits for the container's stdin to drain
	struct client *next;
};

enum state { STARTING, RUNNING, EXITING };

struct conn;

struct ctr {
	char id[256];
	char bundle[PATH_MAX];
	char log[PATH_MAX];
	char cgroup[PATH_MAX]; // the start helper's answer, for the exit helper
	enum state state;
	int logfd;
	pid_t pid;
	bool stdin_once, want_stdin;
	struct stream *out, *err; // err is NULL with a terminal
	int console;              // the terminal's master, or -1
	int stdin_fd;             // where attached input goes, or -1
	struct watch stdin_w;
	char *pending; // input not yet taken by stdin
	size_t pending_len, pending_off;
	struct client *clients;
	// start
	struct watch start_w;
	int start_fd;
	struct conn *starter; // the request waiting for the start's answer
	char *answer;
	size_t answer_len;
	int answer_fd;
	// launched: the monitor started the init itself from the bundle's
	// start plan (launch), init_pid; the answer is then the init's own
	// sync socket, not the start helper's.
	bool launched;
	pid_t init_pid;
	// exit
	int wstatus;
	int64_t finished_ns;
	uint64_t oom_before;
	// From the start answer: the files listing the cgroup's processes
	// (NUL-terminated each, an empty one last) and the one counting its
	// OOM kills, read at the exit (needs_exit_helper).
	char *members;
	char *oom_file;
	int64_t spawned_ns;
	struct watch exit_w;
	int exit_fd;
	bool exit_answered;
	struct ctr *next;
};

struct conn {
	struct watch w;
	int fd;
	int64_t deadline;
	size_t len;
	char buf[MAX_REQUEST];
};

struct req {
	char op[32];
	char id[256];
	char bundle[PATH_MAX];
	char log[PATH_MAX];
	long long sig, width, height;
	bool stdin_, stdin_once;
};

// Exits of processes not (yet) known: a container that exits before its
// start helper's answer names its pid, or an orphan reparented here.
#define ORPHANS 64
struct orphan {
	pid_t pid;
	int status;
	int64_t at;
};

static struct {
	int ep;
	int helper; // the sealed crid-monitor binary
	int pidns;  // the monitor's own PID namespace, to come back to
	char *init_env[3];
	int listen;
	int devnull;
	struct watch listen_w, signal_w;
	int sigfd;
	struct ctr *ctrs;
	struct conn *conns[256];
	struct orphan orphans[ORPHANS];
	int norphans;
	// dirty: a watch was removed (and maybe freed) while handling an
	// event; the rest of the batch may name it and is fetched anew.
	bool dirty;
	char batch[LOG_BATCH + MAX_LOG_LINE + 128];
} M;

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logmsg(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	fputs("monitor: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static int64_t now_ns(clockid_t clk) {
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

// rfc3339nano writes t as Go's time.RFC3339Nano does in UTC: trailing
// zeros of the fraction dropped, no fraction at all when it is zero.
static size_t rfc3339nano(char *out, int64_t t) {
	time_t sec = t / 1000000000LL;
	long nsec = t % 1000000000LL;
	struct tm tm;
	gmtime_r(&sec, &tm);
	size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	if (nsec) {
		char frac[12];
		snprintf(frac, sizeof frac, ".%09ld", nsec);
		size_t l = strlen(frac);
		while (frac[l - 1] == '0')
			l--;
		memcpy(out + n, frac, l);
		n += l;
	}
	out[n++] = 'Z';
	out[n] = 0;
	return n;
}

static int ep_add(int fd, uint32_t events, struct watch *w) {
	struct epoll_event ev = {.events = events, .data.ptr = w};
	return epoll_ctl(M.ep, EPOLL_CTL_ADD, fd, &ev);
}

static void ep_mod(int fd, uint32_t events, struct watch *w) {
	struct epoll_event ev = {.events = events, .data.ptr = w};
	epoll_ctl(M.ep, EPOLL_CTL_MOD, fd, &ev);
}

static void ep_del(int fd) {
	epoll_ctl(M.ep, EPOLL_CTL_DEL, fd, NULL);
	M.dirty = true;
}

static void set_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

// ---- JSON: the requests crid's Go client encodes, and the answers.

static const char *ws(const char *p, const char *e) {
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static int hex4(const char *p, const char *e, unsigned *v) {
	if (e - p < 4)
		return -1;
	*v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		*v <<= 4;
		if (c >= '0' && c <= '9')
			*v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			*v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			*v |= c - 'A' + 10;
		else
			return -1;
	}
	return 0;
}

// jstring reads a JSON string at p (at its quote) into out (cap bytes,
// NUL-terminated; out may be NULL to skip it). A NUL, a lone surrogate or
// a string longer than cap is an error: none is a path or an ID.
static const char *jstring(const char *p, const char *e, char *out, size_t cap) {
	size_t n = 0;
	if (p >= e || *p != '"')
		return NULL;
	p++;
	while (p < e && *p != '"') {
		unsigned char ch = (unsigned char)*p++;
		unsigned cp;
		char tmp[4];
		size_t tl = 1;
		if (ch < 0x20)
			return NULL;
		if (ch != '\\') {
			tmp[0] = (char)ch;
		} else {
			if (p >= e)
				return NULL;
			switch (*p++) {
			case '"': tmp[0] = '"'; break;
			case '\\': tmp[0] = '\\'; break;
			case '/': tmp[0] = '/'; break;
			case 'b': tmp[0] = '\b'; break;
			case 'f': tmp[0] = '\f'; break;
			case 'n': tmp[0] = '\n'; break;
			case 'r': tmp[0] = '\r'; break;
			case 't': tmp[0] = '\t'; break;
			case 'u':
				if (hex4(p, e, &cp))
					return NULL;
				p += 4;
				if (cp >= 0xd800 && cp < 0xdc00) {
					unsigned lo;
					if (e - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, e, &lo) || lo < 0xdc00 || lo >= 0xe000)
						return NULL;
					p += 6;
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				} else if (cp >= 0xdc00 && cp < 0xe000) {
					return NULL;
				}
				if (cp == 0)
					return NULL;
				if (cp < 0x80) {
					tmp[0] = (char)cp;
				} else if (cp < 0x800) {
					tmp[0] = (char)(0xc0 | cp >> 6), tmp[1] = (char)(0x80 | (cp & 0x3f)), tl = 2;
				} else if (cp < 0x10000) {
					tmp[0] = (char)(0xe0 | cp >> 12), tmp[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
					tmp[2] = (char)(0x80 | (cp & 0x3f)), tl = 3;
				} else {
					tmp[0] = (char)(0xf0 | cp >> 18), tmp[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
					tmp[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), tmp[3] = (char)(0x80 | (cp & 0x3f)), tl = 4;
				}
				break;
			default:
				return NULL;
			}
		}
		if (out) {
			if (n + tl >= cap)
				return NULL;
			memcpy(out + n, tmp, tl);
		}
		n += tl;
	}
	if (p >= e)
		return NULL;
	if (out)
		out[n] = 0;
	return p + 1;
}

// jvalue reads a scalar: an integer into *num, true/false into *flag,
// null as nothing. Objects, arrays and fractions are refused.
static const char *jscalar(const char *p, const char *e, long long *num, bool *flag) {
	if (p < e && (*p == '-' || (*p >= '0' && *p <= '9'))) {
		bool neg = *p == '-';
		long long v = 0;
		if (neg)
			p++;
		if (p >= e || *p < '0' || *p > '9')
			return NULL;
		while (p < e && *p >= '0' && *p <= '9') {
			if (v > (LLONG_MAX - 9) / 10)
				return NULL;
			v = v * 10 + (*p++ - '0');
		}
		if (p < e && (*p == '.' || *p == 'e' || *p == 'E'))
			return NULL;
		if (num)
			*num = neg ? -v : v;
		return p;
	}
	if (e - p >= 4 && !memcmp(p, "true", 4)) {
		if (flag)
			*flag = true;
		return p + 4;
	}
	if (e - p >= 5 && !memcmp(p, "false", 5)) {
		if (flag)
			*flag = false;
		return p + 5;
	}
	if (e - p >= 4 && !memcmp(p, "null", 4))
		return p + 4;
	return NULL;
}

// parse_request reads one request object; unknown keys are skipped.
// Returns 0, or -1 for anything that is not a flat object of known types.
int parse_request(const char *p, size_t len, struct req *r) {
	const char *e = p + len;
	memset(r, 0, sizeof *r);
	p = ws(p, e);
	if (p >= e || *p++ != '{')
		return -1;
	p = ws(p, e);
	if (p < e && *p == '}') {
		p++;
		goto end;
	}
	for (;;) {
		char key[32];
		p = ws(p, e);
		if (!(p = jstring(p, e, key, sizeof key)))
			return -1;
		p = ws(p, e);
		if (p >= e || *p++ != ':')
			return -1;
		p = ws(p, e);
		if (p >= e)
			return -1;
		char *str = NULL;
		size_t cap = 0;
		long long *num = NULL;
		bool *flag = NULL;
		if (!strcmp(key, "op"))
			str = r->op, cap = sizeof r->op;
		else if (!strcmp(key, "id"))
			str = r->id, cap = sizeof r->id;
		else if (!strcmp(key, "bundle"))
			str = r->bundle, cap = sizeof r->bundle;
		else if (!strcmp(key, "log"))
			str = r->log, cap = sizeof r->log;
		else if (!strcmp(key, "signal"))
			num = &r->sig;
		else if (!strcmp(key, "width"))
			num = &r->width;
		else if (!strcmp(key, "height"))
			num = &r->height;
		else if (!strcmp(key, "stdin"))
			flag = &r->stdin_;
		else if (!strcmp(key, "stdinOnce"))
			flag = &r->stdin_once;
		if (*p == '"') {
			if (num || flag)
				return -1;
			if (!(p = jstring(p, e, str, str ? cap : 0)))
				return -1;
		} else {
			if (str)
				return -1;
			if (!(p = jscalar(p, e, num, flag)))
				return -1;
		}
		p = ws(p, e);
		if (p >= e)
			return -1;
		if (*p == ',') {
			p++;
			continue;
		}
		if (*p++ != '}')
			return -1;
		break;
	}
end:
	p = ws(p, e);
	return p == e ? 0 : -1;
}

// jquote appends s as a JSON string to out (cap bytes); returns the new
// length, or cap when it did not fit.
static size_t jquote(char *out, size_t n, size_t cap, const char *s) {
	if (n + 2 > cap)
		return cap;
	out[n++] = '"';
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		char esc[8];
		size_t l;
		if (ch == '"' || ch == '\\')
			esc[0] = '\\', esc[1] = (char)ch, l = 2;
		else if (ch < 0x20)
			l = (size_t)snprintf(esc, sizeof esc, "\\u%04x", ch);
		else
			esc[0] = (char)ch, l = 1;
		if (n + l + 1 >= cap)
			return cap;
		memcpy(out + n, esc, l);
		n += l;
	}
	out[n++] = '"';
	return n;
}

// ---- answers

static void close_conn(struct conn *c) {
	for (size_t i = 0; i < sizeof M.conns / sizeof M.conns[0]; i++)
		if (M.conns[i] == c)
			M.conns[i] = NULL;
	ep_del(c->fd);
	close(c->fd);
	free(c);
}

// answer writes one JSON line and ends the exchange. The client waits for
// it: a blocking write of a line this short to a local socket does not
// stall the loop but for a client that stopped reading its own answer.
static void answer(struct conn *c, int pid, const char *err, const char *kind) {
	char out[8192];
	size_t n;
	if (err) {
		n = (size_t)snprintf(out, sizeof out, "{\"error\":");
		n = jquote(out, n, sizeof out - 64, err);
		if (kind && *kind) {
			n += (size_t)snprintf(out + n, sizeof out - n, ",\"kind\":");
			n = jquote(out, n, sizeof out - 8, kind);
		}
		n += (size_t)snprintf(out + n, sizeof out - n, "}\n");
	} else if (pid) {
		n = (size_t)snprintf(out, sizeof out, "{\"pid\":%d}\n", pid);
	} else {
		n = (size_t)snprintf(out, sizeof out, "{}\n");
	}
	struct timeval tv = {.tv_sec = 1};
	int fl = fcntl(c->fd, F_GETFL);
	fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK);
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	ssize_t w = send(c->fd, out, n, MSG_NOSIGNAL);
	(void)w;
	fcntl(c->fd, F_SETFL, fl);
}

// ---- logs

// open_log opens (appending) or creates the log, never through a symlink
// anywhere on its path: the monitor runs as root, and a link planted
// where the log goes would have it append container output to any file
// of the host. crid resolved the pod's log directory already.
static int open_log(const char *path) {
	struct open_how how = {.flags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, .mode = 0640, .resolve = RESOLVE_NO_SYMLINKS};
	return (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
}

static size_t batch_line(size_t n, const char *ts, size_t tslen, const char *stream, bool partial, const char *s, size_t len) {
	memcpy(M.batch + n, ts, tslen);
	n += tslen;
	M.batch[n++] = ' ';
	size_t sl = strlen(stream);
	memcpy(M.batch + n, stream, sl);
	n += sl;
	memcpy(M.batch + n, partial ? " P " : " F ", 3);
	n += 3;
	memcpy(M.batch + n, s, len);
	n += len;
	M.batch[n++] = '\n';
	return n;
}

static void batch_flush(struct ctr *c, size_t n) {
	if (c->logfd >= 0 && n > 0) {
		ssize_t w = write(c->logfd, M.batch, n);
		(void)w;
	}
}

// log_lines turns what the stream's buffer holds into CRI log lines,
// "<RFC3339Nano> <stream> <P|F> <content>": whole lines, a piece of
// MAX_LOG_LINE when the buffer is full without a newline, and at the end
// of the stream what is left as a partial line (the program wrote no
// newline, and a reader must not add one: the kubelet joins partial lines
// as they are, and a termination message taken from the log of `echo -n
// DONE` must read "DONE").
static void log_lines(struct stream *s, bool eof) {
	char ts[40];
	size_t tslen = rfc3339nano(ts, now_ns(CLOCK_REALTIME));
	size_t n = 0, start = 0;
	for (;;) {
		char *nl = memchr(s->buf + start, '\n', s->len - start);
		if (!nl)
			break;
		size_t l = (size_t)(nl - (s->buf + start));
		size_t keep = l;
		if (s->terminal && keep > 0 && s->buf[start + keep - 1] == '\r')
			keep--;
		if (n + keep + 128 > LOG_BATCH) {
			batch_flush(s->c, n);
			n = 0;
		}
		n = batch_line(n, ts, tslen, s->name, false, s->buf + start, keep);
		start += l + 1;
	}
	if ((start == 0 && s->len == sizeof s->buf) || (eof && start < s->len)) {
		n = batch_line(n, ts, tslen, s->name, true, s->buf + start, s->len - start);
		start = s->len;
	}
	batch_flush(s->c, n);
	memmove(s->buf, s->buf + start, s->len - start);
	s->len -= start;
}

// ---- attach

static void drop_client(struct client *cl) {
	struct ctr *c = cl->c;
	for (struct client **pp = &c->clients; *pp; pp = &(*pp)->next)
		if (*pp == cl) {
			*pp = cl->next;
			break;
		}
	ep_del(cl->fd);
	close(cl->fd);
	free(cl);
}

// fanout sends what a stream carried to every attached client, as one
// frame. A client that cannot take a frame whole at once (its socket
// buffer is full) is dropped, never the container, and never waited for.
static void fanout(struct ctr *c, unsigned char frame, const char *p, size_t n) {
	unsigned char hdr[5] = {frame, (unsigned char)(n >> 24), (unsigned char)(n >> 16), (unsigned char)(n >> 8), (unsigned char)n};
	for (struct client *cl = c->clients, *next; cl; cl = next) {
		next = cl->next;
		struct iovec iov[2] = {{hdr, 5}, {(void *)p, n}};
		struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
		ssize_t w = sendmsg(cl->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w != (ssize_t)(n + 5))
			drop_client(cl);
	}
}

// stdin_watch waits for the container's stdin to take input, or stops
// waiting. A terminal's master is in the set already, as the output.
static void stdin_watch(struct ctr *c, bool on) {
	if (c->stdin_fd == c->console && c->out) {
		ep_mod(c->console, on ? EPOLLIN | EPOLLOUT : EPOLLIN, &c->out->w);
		return;
	}
	c->stdin_w = (struct watch){K_STDIN, c};
	if (on)
		ep_add(c->stdin_fd, EPOLLOUT, &c->stdin_w);
	else
		ep_del(c->stdin_fd);
}

// resume_input drops what input waits and lets the clients' input in
// again.
static void resume_input(struct ctr *c) {
	free(c->pending);
	c->pending = NULL;
	for (struct client *cl = c->clients; cl; cl = cl->next)
		if (cl->paused) {
			cl->paused = false;
			ep_mod(cl->fd, EPOLLIN | EPOLLRDHUP, &cl->w);
		}
}

static void close_stdin(struct ctr *c) {
	if (c->stdin_fd >= 0) {
		if (c->pending)
			stdin_watch(c, false);
		if (c->stdin_fd != c->console)
			close(c->stdin_fd);
	}
	c->stdin_fd = -1;
	resume_input(c);
}

// client_gone ends an attached client's input: with stdin_once the
// container's stdin closes (the process reads EOF).
static void client_gone(struct client *cl) {
	struct ctr *c = cl->c;
	if (c->stdin_once && c->stdin_fd >= 0)
		close_stdin(c);
	drop_client(cl);
}

// stdin_write writes input to the container's stdin without blocking;
// what it does not take waits, and the clients' input with it.
static void stdin_write(struct ctr *c, struct client *from, const char *p, size_t n) {
	while (n > 0) {
		ssize_t w = write(c->stdin_fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			break;
		if (w < 0) {
			// The container closed its stdin: this client's input has
			// nowhere to go.
			client_gone(from);
			return;
		}
		p += w, n -= (size_t)w;
	}
	if (n == 0)
		return;
	c->pending = malloc(n);
	if (!c->pending) {
		client_gone(from);
		return;
	}
	memcpy(c->pending, p, n);
	c->pending_len = n, c->pending_off = 0;
	stdin_watch(c, true);
	for (struct client *cl = c->clients; cl; cl = cl->next) {
		cl->paused = true;
		ep_mod(cl->fd, EPOLLRDHUP, &cl->w);
	}
}

static void on_stdin_writable(struct ctr *c) {
	while (c->pending_off < c->pending_len) {
		ssize_t w = write(c->stdin_fd, c->pending + c->pending_off, c->pending_len - c->pending_off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return;
		if (w < 0)
			break;
		c->pending_off += (size_t)w;
	}
	stdin_watch(c, false);
	resume_input(c);
}

static void on_client(struct client *cl, uint32_t events) {
	struct ctr *c = cl->c;
	char buf[32 << 10];
	if (cl->paused) {
		if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			drop_client(cl);
		return;
	}
	ssize_t n = read(cl->fd, buf, sizeof buf);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_gone(cl);
		return;
	}
	if (c->stdin_fd >= 0)
		stdin_write(c, cl, buf, (size_t)n);
}

// ---- containers

static struct ctr *find(const char *id) {
	for (struct ctr *c = M.ctrs; c; c = c->next)
		if (!strcmp(c->id, id))
			return c;
	return NULL;
}

static struct ctr *find_pid(pid_t pid) {
	for (struct ctr *c = M.ctrs; c; c = c->next)
		if (c->state != STARTING && c->pid == pid)
			return c;
	return NULL;
}

static void close_stream(struct stream **sp) {
	struct stream *s = *sp;
	if (!s)
		return;
	ep_del(s->fd);
	if (s->fd != s->c->console)
		close(s->fd);
	free(s);
	*sp = NULL;
}

static void free_ctr(struct ctr *c) {
	for (struct ctr **pp = &M.ctrs; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	close_stream(&c->out);
	close_stream(&c->err);
	while (c->clients)
		drop_client(c->clients);
	close_stdin(c);
	if (c->console >= 0)
		close(c->console);
	if (c->logfd >= 0)
		close(c->logfd);
	if (c->start_fd >= 0) {
		ep_del(c->start_fd);
		close(c->start_fd);
	}
	if (c->answer_fd >= 0)
		close(c->answer_fd);
	if (c->exit_fd >= 0) {
		ep_del(c->exit_fd);
		close(c->exit_fd);
	}
	free(c->answer);
	free(c->members);
	free(c->oom_file);
	free(c);
}

static struct stream *new_stream(struct ctr *c, int fd, const char *name, unsigned char frame, bool terminal) {
	struct stream *s = malloc(sizeof *s);
	if (!s)
		return NULL;
	*s = (struct stream){.w = {K_STREAM, s}, .fd = fd, .name = name, .frame = frame, .terminal = terminal, .c = c};
	set_nonblock(fd);
	if (ep_add(fd, EPOLLIN, &s->w) < 0) {
		free(s);
		return NULL;
	}
	return s;
}

// child_fds readies a child of the monitor's for its exec: fds become its
// 0.. (-1: /dev/null), everything else is close-on-exec, and no signal
// is blocked or ignored.
static void child_fds(const int *fds, int nfds) {
	// Move the descriptors above the ones they become first, so that
	// placing one never overwrites another still to be placed.
	int moved[8];
	for (int i = 0; i < nfds; i++) {
		int fd = fds[i] < 0 ? M.devnull : fds[i];
		moved[i] = fcntl(fd, F_DUPFD_CLOEXEC, 16);
		if (moved[i] < 0)
			_exit(127);
	}
	for (int i = 0; i < nfds; i++)
		if (dup2(moved[i], i) < 0)
			_exit(127);
	syscall(SYS_close_range, (unsigned)nfds > 3 ? (unsigned)nfds : 3U, ~0U, CLOSE_RANGE_CLOEXEC);
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	// An ignored signal stays ignored across exec: the container must
	// not inherit the monitor's SIGPIPE.
	signal(SIGPIPE, SIG_DFL);
}

// spawn runs one of the Go helpers from the sealed crid-monitor binary,
// with the descriptors given as its 0.. (-1: /dev/null). Everything else
// is close-on-exec in it.
static pid_t spawn(char *const argv[], const int *fds, int nfds) {
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	child_fds(fds, nfds);
	syscall(SYS_execveat, M.helper, "", argv, environ, AT_EMPTY_PATH);
	_exit(127);
}

static void finish(struct ctr *c);

// cgroup_busy says whether a process is left in the container's cgroup,
// or it cannot tell. A cgroup that is gone holds nothing.
static bool cgroup_busy(const char *members) {
	for (const char *f = members; *f; f += strlen(f) + 1) {
		int fd = open(f, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			if (errno == ENOENT)
				continue;
			return true;
		}
		char b;
		ssize_t n = read(fd, &b, 1);
		close(fd);
		if (n != 0)
			return true;
	}
	return false;
}

// oom_count reads the "oom_kill N" line of v1's memory.oom_control or
// v2's memory.events; false when it cannot.
static bool oom_count(const char *file, uint64_t *kills) {
	char buf[1024];
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	for (const char *l = buf; *l;) {
		if (strncmp(l, "oom_kill ", 9) == 0) {
			*kills = strtoull(l + 9, NULL, 10);
			return true;
		}
		const char *nl = strchr(l, '\n');
		if (!nl)
			break;
		l = nl + 1;
	}
	return false;
}

// oom_killed says whether the kernel OOM-killed in the container's cgroup
// since its start, or it cannot tell.
static bool oom_killed(struct ctr *c) {
	if (!c->oom_file || !c->oom_file[0])
		return false; // no memory controller: no OOM kill of its own
	uint64_t kills;
	return !oom_count(c->oom_file, &kills) || kills > c->oom_before;
}

// needs_exit_helper says whether an exit needs the Go helper: to kill
// what the container left in its cgroup, or to report an OOM kill. Most
// exits need neither, and cost no exec then.
static bool needs_exit_helper(struct ctr *c) {
	return !c->members || oom_killed(c) || cgroup_busy(c->members);
}

// exited starts the container's exit: the `exited` helper kills what the
// container left in its cgroup (which ends the output pipes a leftover
// held) and makes the exit record, when needs_exit_helper; finish writes
// it (or this process's own record) once the output is all in the log.
static void exited(struct ctr *c, int status, int64_t at) {
	c->state = EXITING;
	c->wstatus = status;
	c->finished_ns = at;
	// No more input: a client's input has no process to go to.
	close_stdin(c);
	free(c->answer);
	c->answer = NULL;
	c->answer_len = 0;
	if (!needs_exit_helper(c)) {
		c->exit_answered = true;
		finish(c);
		return;
	}
	int p[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) < 0) {
		logmsg("pipe for the exit of %s: %s", c->id, strerror(errno));
		c->exit_answered = true;
		finish(c);
		return;
	}
	char oom[24], pid[16], st[16], ns[24];
	snprintf(oom, sizeof oom, "%llu", (unsigned long long)c->oom_before);
	snprintf(pid, sizeof pid, "%d", c->pid);
	snprintf(st, sizeof st, "%d", status);
	snprintf(ns, sizeof ns, "%lld", (long long)at);
	char *argv[] = {"crid", "exited", c->bundle, c->cgroup, oom, pid, st, ns, NULL};
	int fds[] = {-1, p[1], 2}; // stderr: the monitor's log
	pid_t h = spawn(argv, fds, 3);
	close(p[1]);
	if (h < 0) {
		logmsg("run the exit helper of %s: %s", c->id, strerror(errno));
		close(p[0]);
		c->exit_answered = true;
		finish(c);
		return;
	}
	c->exit_fd = p[0];
	set_nonblock(p[0]);
	c->exit_w = (struct watch){K_EXITOUT, c};
	ep_add(p[0], EPOLLIN, &c->exit_w);
}

static int append_answer(struct ctr *c, const char *p, size_t n) {
	if (c->answer_len + n > MAX_ANSWER)
		return -1;
	char *a = realloc(c->answer, c->answer_len + n + 1);
	if (!a)
		return -1;
	memcpy(a + c->answer_len, p, n);
	c->answer = a;
	c->answer_len += n;
	a[c->answer_len] = 0;
	return 0;
}

// read_answer reads a helper's answer on *fd (and a descriptor passed
// with it) until the helper closes its end; it returns true then, with
// *fd closed.
static bool read_answer(struct ctr *c, int *fd) {
	char buf[4096];
	for (;;) {
		char cbuf[CMSG_SPACE(sizeof(int))];
		struct iovec iov = {buf, sizeof buf};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
		ssize_t n = recvmsg(*fd, &mh, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return false;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
				int got;
				memcpy(&got, CMSG_DATA(cm), sizeof got);
				if (c->answer_fd >= 0)
					close(c->answer_fd);
				c->answer_fd = got;
			}
		if (n > 0 && append_answer(c, buf, (size_t)n) == 0)
			continue;
		break;
	}
	ep_del(*fd);
	close(*fd);
	*fd = -1;
	return true;
}

static void on_exit_out(struct ctr *c) {
	if (!read_answer(c, &c->exit_fd))
		return;
	c->exit_answered = true;
	finish(c);
}

// write_exit records the exit in the bundle, atomically: a reader sees no
// file or the whole of it. The helper's record, or, when it had none to
// give, what this process knows itself.
static void write_exit(struct ctr *c) {
	char rec[512];
	const char *data = c->answer;
	size_t len = c->answer_len;
	while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == ' '))
		len--;
	if (len == 0 || data[0] != '{') {
		char ts[40];
		rfc3339nano(ts, c->finished_ns);
		int code, sig = 0;
		if (WIFSIGNALED(c->wstatus))
			sig = WTERMSIG(c->wstatus), code = 128 + sig;
		else
			code = WEXITSTATUS(c->wstatus);
		len = (size_t)snprintf(rec, sizeof rec, "{\"pid\":%d,\"exitCode\":%d%s", c->pid, code, sig ? "," : "");
		if (sig)
			len += (size_t)snprintf(rec + len, sizeof rec - len, "\"signal\":%d", sig);
		len += (size_t)snprintf(rec + len, sizeof rec - len, ",\"finishedAt\":\"%s\"}", ts);
		data = rec;
	}
	char tmp[PATH_MAX + 16], dst[PATH_MAX + 16];
	snprintf(tmp, sizeof tmp, "%s/%s.tmp", c->bundle, EXIT_FILE);
	snprintf(dst, sizeof dst, "%s/%s", c->bundle, EXIT_FILE);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len || close(fd) < 0 || rename(tmp, dst) < 0) {
		logmsg("record exit of %s: %s", c->id, strerror(errno));
		if (fd >= 0)
			unlink(tmp);
	}
}

// finish records the exit once the helper answered and the output is all
// logged: output the process left in the pipes goes before its exit.
static void finish(struct ctr *c) {
	if (c->state != EXITING || !c->exit_answered || c->out || c->err)
		return;
	write_exit(c);
	free_ctr(c);
}

static void on_stream(struct stream *s) {
	struct ctr *c = s->c;
	bool eof = false;
	ssize_t n = read(s->fd, s->buf + s->len, sizeof s->buf - s->len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0)
		eof = true; // EIO: a terminal whose last holder is gone
	else {
		fanout(c, s->frame, s->buf + s->len, (size_t)n);
		s->len += (size_t)n;
	}
	log_lines(s, eof);
	if (!eof)
		return;
	if (s == c->out)
		close_stream(&c->out);
	else
		close_stream(&c->err);
	finish(c);
}

static bool recorded(const char *bundle) {
	char p[PATH_MAX + 16];
	snprintf(p, sizeof p, "%s/%s", bundle, EXIT_FILE);
	return access(p, F_OK) == 0;
}

static void take_orphan_exit(struct ctr *c) {
	for (int i = 0; i < M.norphans; i++)
		// An exit from before the helper ran is another process's whose
		// pid was reused.
		if (M.orphans[i].pid == c->pid && M.orphans[i].at >= c->spawned_ns) {
			struct orphan o = M.orphans[i];
			M.orphans[i] = M.orphans[--M.norphans];
			exited(c, o.status, o.at);
			return;
		}
}

static void close_pair(int p[2]) {
	for (int i = 0; i < 2; i++)
		if (p[i] >= 0)
			close(p[i]);
}

static char *read_plan(const char *bundle, char *err, size_t cap);
static bool launch(struct ctr *c, const char *plan, const int fds[4], int sync, char *err, size_t cap);

// start starts a container: the monitor launches its init itself as the
// bundle's start plan says (launch), or, for a bundle without one, runs
// the `start` helper. It makes the pipes (with a terminal, the init
// hands back the master) and answers the request once the init has
// exec'd, or the helper has answered.
static void start(struct conn *conn, struct req *r) {
	struct ctr *c = find(r->id);
	if (c) {
		// A start crid retries after a crash cut the first one short.
		if (c->state == RUNNING) {
			answer(conn, c->pid, NULL, NULL);
		} else if (c->state == STARTING) {
			answer(conn, 0, "container is being started by another request", "Unavailable");
		} else {
			char msg[512];
			snprintf(msg, sizeof msg, "container %s ran already and exited", r->id);
			answer(conn, 0, msg, "FailedPrecondition");
		}
		close_conn(conn);
		return;
	}
	if (!r->id[0] || !r->bundle[0]) {
		answer(conn, 0, "start needs an id and a bundle", "InvalidArgument");
		close_conn(conn);
		return;
	}
	if (recorded(r->bundle)) {
		char msg[512];
		snprintf(msg, sizeof msg, "container %s ran already and exited", r->id);
		answer(conn, 0, msg, "FailedPrecondition");
		close_conn(conn);
		return;
	}
	c = calloc(1, sizeof *c);
	if (!c) {
		answer(conn, 0, "out of memory", NULL);
		close_conn(conn);
		return;
	}
	strcpy(c->id, r->id);
	strcpy(c->bundle, r->bundle);
	strcpy(c->log, r->log);
	c->state = STARTING;
	c->logfd = c->console = c->stdin_fd = c->start_fd = c->answer_fd = c->exit_fd = -1;
	c->stdin_once = r->stdin_once;
	c->want_stdin = r->stdin_;
	c->next = M.ctrs;
	M.ctrs = c;
	// Not zero-filled: a stack page the monitor touches stays its own.
	char err[PATH_MAX + 128];
	err[0] = 0;
	int outp[2] = {-1, -1}, errp[2] = {-1, -1}, inp[2] = {-1, -1}, sk[2] = {-1, -1};
	if (c->log[0] && (c->logfd = open_log(c->log)) < 0) {
		snprintf(err, sizeof err, "open log %s: %s", c->log, strerror(errno));
		goto fail;
	}
	if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 || (r->stdin_ && pipe2(inp, O_CLOEXEC) < 0) ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sk) < 0) {
		snprintf(err, sizeof err, "pipes for container %s: %s", c->id, strerror(errno));
		goto fail;
	}
	c->spawned_ns = now_ns(CLOCK_REALTIME);
	char *plan = read_plan(c->bundle, err, sizeof err);
	if (plan) {
		// 0-2: the container's stdio (the init makes a terminal's); 3:
		// the init's sync socket.
		int fds[] = {inp[0], outp[1], errp[1], sk[1]};
		bool ok = launch(c, plan, fds, sk[0], err, sizeof err);
		free(plan);
		if (!ok)
			goto fail;
	} else if (err[0]) {
		goto fail;
	} else {
		char *argv[] = {"crid", "start", c->bundle, NULL};
		// 0, 1: nothing; 2: the monitor's log; 3: the answer; 4-6: the
		// container's stdin, stdout and stderr.
		int fds[] = {-1, -1, 2, sk[1], inp[0], outp[1], errp[1]};
		if (spawn(argv, fds, 7) < 0) {
			snprintf(err, sizeof err, "run the start helper: %s", strerror(errno));
			goto fail;
		}
	}
	close(sk[1]), close(outp[1]), close(errp[1]);
	sk[1] = outp[1] = errp[1] = -1;
	if (inp[0] >= 0)
		close(inp[0]);
	c->start_fd = sk[0];
	set_nonblock(c->start_fd);
	c->start_w = (struct watch){K_START, c};
	ep_add(c->start_fd, EPOLLIN, &c->start_w);
	c->stdin_fd = inp[1];
	c->out = new_stream(c, outp[0], "stdout", FRAME_STDOUT, false);
	c->err = new_stream(c, errp[0], "stderr", FRAME_STDERR, false);
	if (!c->out || !c->err) {
		// The helper runs already: it is let to end on its own.
		answer(conn, 0, "watch the container's output: out of memory", NULL);
		close_conn(conn);
		if (!c->out)
			close(outp[0]);
		if (!c->err)
			close(errp[0]);
		free_ctr(c);
		return;
	}
	c->starter = conn;
	// Nothing more is read from it, and its hang-up (a client that gave
	// up) must not free it under the start: out of the set until answered.
	ep_del(conn->fd);
	return;
fail:
	close_pair(outp);
	close_pair(errp);
	close_pair(inp);
	close_pair(sk);
	answer(conn, 0, err, NULL);
	close_conn(conn);
	free_ctr(c);
}

// jvalue finds "key": in the helper's answer (the helper's own encoding
// of a flat object) and returns where its value starts, past prefix.
static const char *jvalue(const char *a, const char *key, const char *prefix) {
	char pat[48];
	snprintf(pat, sizeof pat, "\"%s\":%s", key, prefix);
	const char *p = strstr(a, pat);
	return p ? p + strlen(pat) : NULL;
}

// jfield reads the scalar or string at "key": in the helper's answer.
static bool jfield(const char *a, const char *key, long long *num, char *str, size_t cap) {
	const char *p = jvalue(a, key, "");
	if (!p)
		return false;
	const char *e = a + strlen(a);
	if (str)
		return jstring(p, e, str, cap) != NULL;
	return jscalar(p, e, num, NULL) != NULL;
}

// jstrings reads the array of strings at "key": in the helper's answer
// into one allocation: each string NUL-terminated, an empty one last.
static char *jstrings(const char *a, const char *key) {
	const char *p = jvalue(a, key, "[");
	if (!p)
		return NULL;
	const char *e = a + strlen(a);
	// Decoded, a string is never longer than its encoding.
	size_t cap = (size_t)(e - p) + 1;
	char *out = malloc(cap), *o = out;
	if (!out)
		return NULL;
	while (p < e && *p == '"') {
		if (!(p = jstring(p, e, o, cap - (size_t)(o - out))))
			break;
		o += strlen(o) + 1;
		if (p < e && *p == ',')
			p++;
	}
	if (!p || p >= e || *p != ']') {
		free(out);
		return NULL;
	}
	*o++ = 0;
	char *fit = realloc(out, (size_t)(o - out));
	return fit ? fit : out;
}

// jdup decodes the string at "key": of a plan into an allocation of its
// own; NULL when there is none (or it is not a string).
static char *jdup(const char *a, const char *key) {
	const char *p = jvalue(a, key, "");
	if (!p || *p != '"')
		return NULL;
	const char *e = a + strlen(a);
	// Decoded, a string is never longer than its encoding.
	size_t cap = (size_t)(e - p) + 1;
	char *out = malloc(cap);
	if (!out || !jstring(p, e, out, cap) || !out[0]) {
		free(out);
		return NULL;
	}
	char *fit = realloc(out, strlen(out) + 1);
	return fit ? fit : out;
}

static void send_init_message(struct ctr *c, int sync);

// read_plan reads the bundle's start plan (monitor.StartPlan): NULL with
// err empty when it has none, which leaves the start to the helper.
static char *read_plan(const char *bundle, char *err, size_t cap) {
	char path[PATH_MAX + 16];
	snprintf(path, sizeof path, "%s/%s", bundle, PLAN_FILE);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno != ENOENT)
			snprintf(err, cap, "read %s: %s", path, strerror(errno));
		return NULL;
	}
	struct stat st;
	size_t want = fstat(fd, &st) == 0 && st.st_size > 0 && st.st_size < MAX_PLAN ? (size_t)st.st_size : MAX_PLAN;
	char *buf = malloc(want + 1);
	size_t n = 0;
	ssize_t r = 0;
	while (buf && n < want && (r = read(fd, buf + n, want - n)) > 0)
		n += (size_t)r;
	close(fd);
	if (!buf || r < 0 || n == MAX_PLAN || n == 0) {
		snprintf(err, cap, "read %s: %s", path, !buf ? "out of memory" : r < 0 ? strerror(errno) : "empty or too long");
		free(buf);
		return NULL;
	}
	buf[n] = 0;
	return buf;
}

// join_cgroup writes 0 to a v1 membership file ("tasks"), which moves
// the calling thread alone: done while the process has one thread, it
// moves the process and spares the kernel the synchronize_rcu of a move
// of a whole thread group (10-15 ms here). 0, or the errno.
int join_cgroup(const char *file) {
	int fd = open(file, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	int e = write(fd, "0", 1) == 1 ? 0 : errno;
	close(fd);
	return e;
}

// launch_fail tells the monitor, on the sync socket, why the child could
// not become the init, and ends it.
static void launch_fail(const char *what, const char *arg) {
	char m[PATH_MAX + 256];
	int n = snprintf(m, sizeof m, "%s %s: %s", what, arg, strerror(errno));
	if (write(3, m, (size_t)n) < 0)
		_exit(1);
	_exit(1);
}

// launch_child is the child of launch's clone, in the namespaces the
// clone made: it does what executor.Launch lists, then execs the init.
static void launch_child(const int fds[4], const char *join, const long long *adj, const char *members) {
	child_fds(fds, 4);
	// A session of its own: the container's signals and terminal are
	// never the monitor's.
	if (setsid() < 0)
		launch_fail("setsid", "");
	// Written as the host's root, before any namespace is joined.
	if (adj) {
		char v[24];
		int n = snprintf(v, sizeof v, "%lld", *adj);
		int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, v, (size_t)n) != n)
			launch_fail("oom_score_adj", v);
		close(fd);
	}
	// On v1 the child puts itself in each hierarchy while it has one
	// thread (nsenter's crid_join_cgroups does the same for StartConfig's
	// init).
	for (const char *f = members; f && *f; f += strlen(f) + 1)
		if ((errno = join_cgroup(f)) != 0)
			launch_fail("join the container's cgroup", f);
	for (const char *p = join; p && *p; p += strlen(p) + 1) {
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, 0) < 0)
			launch_fail("join namespace", p);
		close(fd);
	}
	char *argv[] = {"crid", "init", NULL};
	syscall(SYS_execveat, M.helper, "", argv, M.init_env, AT_EMPTY_PATH);
	launch_fail("exec the container's init", "");
}

// launch starts the container's init as its start plan says
// (executor.Launch): clone3 makes its namespaces, in its cgroup on v2;
// the child joins the rest and execs the init, which reads the bundle.
// stdio are the child's 0-2 and its end of the sync socket, sync the
// monitor's end, which is then read as a helper's answer would be
// (on_start_answer).
static bool launch(struct ctr *c, const char *plan, const int stdio[4], int sync, char *err, size_t cap) {
	// With a terminal the init makes its own stdio: the pipes are not
	// the container's.
	int fds[4] = {stdio[0], stdio[1], stdio[2], stdio[3]};
	if (jvalue(plan, "terminal", "true"))
		fds[0] = fds[1] = fds[2] = -1;
	// The plan's strings are decoded into allocations of their size, not
	// into path-sized buffers: each page a start touches stays the
	// monitor's for its life (docs/containers.md, "Memory per pod").
	long long flags = -1, adj = 0;
	bool has_adj = jfield(plan, "oomScoreAdj", &adj, NULL, 0);
	jfield(plan, "clone", &flags, NULL, 0);
	jfield(plan, "cgroup", NULL, c->cgroup, sizeof c->cgroup);
	char *join_pid = jdup(plan, "joinPid"), *cgdir = jdup(plan, "cgroupDir");
	c->oom_file = jdup(plan, "oomFile");
	char *join = jvalue(plan, "join", "[") ? jstrings(plan, "join") : NULL;
	c->members = jstrings(plan, "members");
	int cg = -1, pidns = -1;
	bool ok = false;
	if (flags < 0 || ((uint64_t)flags & ~PLAN_CLONE_FLAGS) || !c->members || (!join && jvalue(plan, "join", "["))) {
		snprintf(err, cap, "%s/%s: not a start plan", c->bundle, PLAN_FILE);
		goto out;
	}
	if (c->oom_file)
		oom_count(c->oom_file, &c->oom_before);
	if (cgdir && (cg = open(cgdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		snprintf(err, cap, "open cgroup %s: %s", cgdir, strerror(errno));
		goto out;
	}
	// A PID namespace joined by setns holds the caller's next children,
	// not the caller: the monitor joins it for the clone and comes back.
	if (join_pid && ((pidns = open(join_pid, O_RDONLY | O_CLOEXEC)) < 0 || setns(pidns, CLONE_NEWPID) < 0)) {
		snprintf(err, cap, "join PID namespace %s: %s", join_pid, strerror(errno));
		if (pidns >= 0)
			close(pidns);
		pidns = -1;
		goto out;
	}
	struct clone_args3 ca = {.flags = (uint64_t)flags, .exit_signal = SIGCHLD};
	if (cg >= 0)
		ca.flags |= CLONE_INTO_CGROUP, ca.cgroup = (uint64_t)cg;
	pid_t pid = (pid_t)syscall(SYS_clone3, &ca, sizeof ca);
	if (pid == 0)
		launch_child(fds, join, has_adj ? &adj : NULL, cg >= 0 ? NULL : c->members);
	int saved = errno;
	if (pidns >= 0) {
		if (setns(M.pidns, CLONE_NEWPID) < 0)
			logmsg("back to the monitor's PID namespace: %s", strerror(errno));
	}
	if (pid < 0) {
		snprintf(err, cap, "clone the init of %s: %s", c->id, strerror(saved));
		goto out;
	}
	c->launched = true;
	c->init_pid = pid;
	send_init_message(c, sync);
	ok = true;
out:
	if (pidns >= 0)
		close(pidns);
	if (cg >= 0)
		close(cg);
	free(join);
	free(join_pid);
	free(cgdir);
	return ok;
}

// send_init_message writes the init its message (executor.LaunchMessage),
// short enough for the socket to take whole. If the child failed before
// reading it, its error is on the socket all the same.
static void send_init_message(struct ctr *c, int sync) {
	const char *mounts = getenv("CRID_CGROUP_MOUNTS");
	// Quoted, a byte takes at most six.
	size_t cap = 64 + 6 * (strlen(c->bundle) + (mounts ? strlen(mounts) : 0));
	char *msg = malloc(cap);
	if (!msg) {
		logmsg("send %s its init message: out of memory", c->id);
		return;
	}
	size_t n = (size_t)snprintf(msg, cap, "{\"bundle\":");
	n = jquote(msg, n, cap, c->bundle);
	if (mounts) {
		n += (size_t)snprintf(msg + n, cap - n, ",\"cgroupMounts\":");
		n = jquote(msg, n, cap, mounts);
	}
	n += (size_t)snprintf(msg + n, cap - n, "}\n");
	if (send(sync, msg, n, MSG_NOSIGNAL) != (ssize_t)n)
		logmsg("send %s its init message: %s", c->id, strerror(errno));
	free(msg);
}

// launched_answer ends a launch: the init closed its sync socket at exec,
// after a terminal's master (a 0 byte, consoleMark, with the descriptor)
// if it made one; anything else it wrote is why it failed. The message and
// kind are executor.initError's.
static bool launched_answer(struct ctr *c, char *err, size_t cap, const char **kind) {
	const char *a = c->answer ? c->answer : "";
	size_t n = c->answer_len;
	if (n > 0 && a[0] == 0 && c->answer_fd >= 0)
		a++, n--;
	if (n == 0)
		return true;
	static const char spec_prefix[] = "invalid-spec: ";
	if (n >= sizeof spec_prefix - 1 && !memcmp(a, spec_prefix, sizeof spec_prefix - 1)) {
		*kind = "InvalidArgument";
		a += sizeof spec_prefix - 1, n -= sizeof spec_prefix - 1;
		snprintf(err, cap, "container init: %.*s: invalid argument", (int)n, a);
	} else {
		snprintf(err, cap, "container init: %.*s", (int)n, a);
	}
	return false;
}

static void started(struct ctr *c, pid_t pid, struct conn *conn);

static void on_start_answer(struct ctr *c) {
	if (!read_answer(c, &c->start_fd))
		return;
	struct conn *conn = c->starter;
	c->starter = NULL;
	long long pid = 0, oom = 0;
	char err[8192], kind[64]; // not zero-filled: see start
	err[0] = kind[0] = 0;
	if (c->launched) {
		const char *k = "";
		if (!launched_answer(c, err, sizeof err, &k)) {
			answer(conn, 0, err, k);
			close_conn(conn);
			free_ctr(c);
			return;
		}
		started(c, c->init_pid, conn);
		return;
	}
	if (!c->answer || !jfield(c->answer, "pid", &pid, NULL, 0) || pid <= 0) {
		if (!c->answer || !jfield(c->answer, "error", NULL, err, sizeof err) || !err[0])
			snprintf(err, sizeof err, "container %s: the start helper gave no answer (see monitor.log)", c->id);
		jfield(c->answer ? c->answer : "", "kind", NULL, kind, sizeof kind);
		answer(conn, 0, err, kind);
		close_conn(conn);
		free_ctr(c);
		return;
	}
	jfield(c->answer, "oomBefore", &oom, NULL, 0);
	jfield(c->answer, "cgroup", NULL, c->cgroup, sizeof c->cgroup);
	c->members = jstrings(c->answer, "members");
	char oom_file[PATH_MAX];
	if (jfield(c->answer, "oomFile", NULL, oom_file, sizeof oom_file))
		c->oom_file = strdup(oom_file);
	c->oom_before = (uint64_t)oom;
	started(c, (pid_t)pid, conn);
}

// started makes a started container's pid known, takes over its terminal
// and answers its start.
static void started(struct ctr *c, pid_t pid, struct conn *conn) {
	free(c->answer);
	c->answer = NULL;
	c->answer_len = 0;
	c->pid = pid;
	c->state = RUNNING;
	if (c->answer_fd >= 0) {
		// A terminal: its master carries input and output both (the
		// output goes to the log as stdout, as with containerd). The
		// pipes are not the container's: the helper that held their
		// other ends is gone.
		c->console = c->answer_fd;
		c->answer_fd = -1;
		close_stream(&c->out);
		close_stream(&c->err);
		close_stdin(c);
		if (c->want_stdin)
			c->stdin_fd = c->console;
		c->out = new_stream(c, c->console, "stdout", FRAME_STDOUT, true);
		if (!c->out) {
			logmsg("watch the terminal of %s: out of memory", c->id);
			close(c->console);
			c->console = -1;
		}
	}
	answer(conn, c->pid, NULL, NULL);
	close_conn(conn);
	take_orphan_exit(c);
}

static void reap(void) {
	struct signalfd_siginfo si;
	while (read(M.sigfd, &si, sizeof si) == sizeof si)
		;
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			break;
		struct ctr *c = find_pid(pid);
		if (c && c->state == RUNNING) {
			exited(c, status, now_ns(CLOCK_REALTIME));
			continue;
		}
		if (c)
			continue;
		// A helper, an orphan, or a container whose start is not answered
		// yet: kept a while, in case it is the last.
		if (M.norphans == ORPHANS)
			memmove(M.orphans, M.orphans + 1, sizeof M.orphans[0] * --M.norphans);
		M.orphans[M.norphans++] = (struct orphan){pid, status, now_ns(CLOCK_REALTIME)};
	}
}

static struct ctr *running(struct conn *conn, const char *id, bool need_kind) {
	struct ctr *c = find(id);
	if (c && c->state == RUNNING)
		return c;
	char msg[512];
	snprintf(msg, sizeof msg, "container %s is not running", id);
	answer(conn, 0, msg, need_kind ? "NotFound" : NULL);
	return NULL;
}

static void attach(struct conn *conn, struct req *r, bool extra) {
	if (extra) {
		// The client sent stdin before the answer: not in this protocol.
		close_conn(conn);
		return;
	}
	struct ctr *c = running(conn, r->id, false);
	if (!c) {
		close_conn(conn);
		return;
	}
	answer(conn, c->pid, NULL, NULL);
	struct client *cl = malloc(sizeof *cl);
	if (!cl) {
		close_conn(conn);
		return;
	}
	int fd = conn->fd;
	M.dirty = true;
	for (size_t i = 0; i < sizeof M.conns / sizeof M.conns[0]; i++)
		if (M.conns[i] == conn)
			M.conns[i] = NULL;
	free(conn);
	int sz = 1 << 20;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
	*cl = (struct client){.w = {K_CLIENT, cl}, .fd = fd, .c = c, .next = c->clients};
	c->clients = cl;
	bool paused = c->pending != NULL;
	cl->paused = paused;
	ep_mod(fd, paused ? EPOLLRDHUP : EPOLLIN | EPOLLRDHUP, &cl->w);
}

// serve answers one request; it returns true when the monitor should end.
static bool serve(struct conn *conn, struct req *r, bool extra) {
	char msg[PATH_MAX + 256];
	if (!strcmp(r->op, "attach")) {
		attach(conn, r, extra);
		return false;
	}
	if (!strcmp(r->op, "start")) {
		start(conn, r);
		return false;
	}
	if (!strcmp(r->op, "pid")) {
		struct ctr *c = running(conn, r->id, true);
		if (c)
			answer(conn, c->pid, NULL, NULL);
	} else if (!strcmp(r->op, "kill")) {
		struct ctr *c = find(r->id);
		if (r->sig < 0 || r->sig > 64) {
			answer(conn, 0, "signal out of range", "InvalidArgument");
		} else if (c && c->state == RUNNING && kill(c->pid, (int)r->sig) < 0 && errno != ESRCH) {
			snprintf(msg, sizeof msg, "signal %s: %s", r->id, strerror(errno));
			answer(conn, 0, msg, NULL);
		} else {
			answer(conn, 0, NULL, NULL); // one that exited: nothing to signal
		}
	} else if (!strcmp(r->op, "resize")) {
		struct ctr *c = find(r->id);
		if (!c || c->state != RUNNING) {
			snprintf(msg, sizeof msg, "container %s is not running", r->id);
			answer(conn, 0, msg, NULL);
		} else if (c->console < 0) {
			snprintf(msg, sizeof msg, "container %s has no terminal", r->id);
			answer(conn, 0, msg, NULL);
		} else {
			struct winsize wsz = {.ws_row = (unsigned short)r->height, .ws_col = (unsigned short)r->width};
			if (ioctl(c->console, TIOCSWINSZ, &wsz) < 0) {
				snprintf(msg, sizeof msg, "resize %s: %s", r->id, strerror(errno));
				answer(conn, 0, msg, NULL);
			} else
				answer(conn, 0, NULL, NULL);
		}
	} else if (!strcmp(r->op, "reopen")) {
		struct ctr *c = running(conn, r->id, false);
		if (c && c->log[0]) {
			int fd = open_log(c->log);
			if (fd < 0) {
				snprintf(msg, sizeof msg, "open log %s: %s", c->log, strerror(errno));
				answer(conn, 0, msg, NULL);
			} else {
				// Lines are written whole, between events: none is split
				// across the old file and the new.
				if (c->logfd >= 0)
					close(c->logfd);
				c->logfd = fd;
				answer(conn, 0, NULL, NULL);
			}
		} else if (c) {
			answer(conn, 0, NULL, NULL);
		}
	} else if (!strcmp(r->op, "shutdown")) {
		int n = 0;
		for (struct ctr *c = M.ctrs; c; c = c->next)
			n++;
		if (n > 0) {
			snprintf(msg, sizeof msg, "%d containers still run", n);
			answer(conn, 0, msg, NULL);
		} else {
			answer(conn, 0, NULL, NULL);
			close_conn(conn);
			return true;
		}
	} else {
		snprintf(msg, sizeof msg, "unknown op %.64s", r->op);
		answer(conn, 0, msg, NULL);
	}
	close_conn(conn);
	return false;
}

// on_conn reads a request line; a request is answered once whole.
static bool on_conn(struct conn *conn) {
	for (;;) {
		ssize_t n = read(conn->fd, conn->buf + conn->len, sizeof conn->buf - conn->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return false;
		if (n <= 0) {
			close_conn(conn);
			return false;
		}
		conn->len += (size_t)n;
		char *nl = memchr(conn->buf, '\n', conn->len);
		if (!nl && conn->len == sizeof conn->buf) {
			close_conn(conn);
			return false;
		}
		if (!nl)
			continue;
		struct req *r = malloc(sizeof *r);
		if (!r) {
			close_conn(conn);
			return false;
		}
		size_t line = (size_t)(nl - conn->buf);
		bool extra = ws(nl + 1, conn->buf + conn->len) != conn->buf + conn->len;
		bool end = false;
		if (parse_request(conn->buf, line, r) < 0) {
			answer(conn, 0, "a request is one JSON object of known fields on a line", "InvalidArgument");
			close_conn(conn);
		} else {
			end = serve(conn, r, extra);
		}
		free(r);
		return end;
	}
}

static void on_listen(void) {
	for (;;) {
		int fd = accept4(M.listen, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		size_t slot = 0;
		while (slot < sizeof M.conns / sizeof M.conns[0] && M.conns[slot])
			slot++;
		struct conn *c = slot < sizeof M.conns / sizeof M.conns[0] ? malloc(sizeof *c) : NULL;
		if (!c) {
			close(fd); // too many requests at once: the client retries
			continue;
		}
		c->w = (struct watch){K_CONN, c};
		c->fd = fd;
		c->len = 0;
		c->deadline = now_ns(CLOCK_MONOTONIC) + REQUEST_TIMEOUT_NS;
		M.conns[slot] = c;
		ep_add(fd, EPOLLIN, &c->w);
	}
}

// expire closes requests that did not arrive whole within their time.
// A connection waiting for a start's answer is the start's, not timed.
static void expire(void) {
	int64_t now = now_ns(CLOCK_MONOTONIC);
	for (size_t i = 0; i < sizeof M.conns / sizeof M.conns[0]; i++) {
		struct conn *c = M.conns[i];
		if (!c || now < c->deadline)
			continue;
		bool starting = false;
		for (struct ctr *k = M.ctrs; k; k = k->next)
			starting |= k->starter == c;
		if (!starting)
			close_conn(c);
	}
}

int infra_main(int argc, char **argv); // infra.c

int main(int argc, char **argv) {
	// A pod's infra process runs from this binary too (infra.c).
	if (argc >= 2 && strcmp(argv[1], "infra") == 0)
		return infra_main(argc - 1, argv + 1);
	if (argc != 2) {
		fputs("crid-podmon is started by crid: crid-podmon DIR (fd 3: crid-monitor) | crid-podmon infra [flags]\n", stderr);
		return 2;
	}
	setvbuf(stderr, NULL, _IOLBF, 0);
	// The monitor is its starter's grandchild: its first process exits at
	// once, and the monitor goes to init (or the nearest subreaper), so
	// that crid waits for nothing of it. A crid that reaped its monitors
	// held a thread blocked in wait4, a goroutine and a pipe per pod for
	// the pod's life. Forked first of all: nothing is shared but stdio.
	pid_t first = fork();
	if (first < 0) {
		logmsg("fork: %s", strerror(errno));
		return 1;
	}
	if (first > 0)
		_exit(0);
	// The helper binary, sealed by crid, moves out of the way of the
	// descriptors the helpers are given.
	M.helper = fcntl(3, F_DUPFD_CLOEXEC, 16);
	if (M.helper < 0) {
		logmsg("no crid-monitor binary on fd 3: %s", strerror(errno));
		return 1;
	}
	close(3);
	M.devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	M.pidns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
	if (M.pidns < 0) {
		logmsg("open the monitor's PID namespace: %s", strerror(errno));
		return 1;
	}
	// The init's environment: the container's comes from its spec. One P:
	// it lives for one start.
	M.init_env[0] = "GOMAXPROCS=1";
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
		logmsg("subreaper: %s", strerror(errno));
		return 1;
	}
	// Socket paths are limited to 107 bytes and a pod's dir under the run
	// root is longer: listen relative to the dir; clients dial through a
	// descriptor of it. A path, never an abstract socket (CVE-2020-15257).
	if (chdir(argv[1]) < 0) {
		logmsg("%s: %s", argv[1], strerror(errno));
		return 1;
	}
	unlink(SOCKET_NAME);
	M.listen = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, SOCKET_NAME);
	mode_t old = umask(0177);
	if (M.listen < 0 || bind(M.listen, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(M.listen, 128) < 0) {
		logmsg("listen: %s", strerror(errno));
		return 1;
	}
	umask(old);
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	signal(SIGPIPE, SIG_IGN);
	M.sigfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
	M.ep = epoll_create1(EPOLL_CLOEXEC);
	M.listen_w = (struct watch){K_LISTEN, NULL};
	M.signal_w = (struct watch){K_SIGNAL, NULL};
	if (M.sigfd < 0 || M.ep < 0 || ep_add(M.listen, EPOLLIN, &M.listen_w) < 0 || ep_add(M.sigfd, EPOLLIN, &M.signal_w) < 0) {
		logmsg("epoll: %s", strerror(errno));
		return 1;
	}
	// Tell the starter the socket is ready, and hold none of its pipe.
	if (write(1, "ready\n", 6) != 6)
		return 1;
	dup2(M.devnull, 1);
	dup2(M.devnull, 0);
	for (;;) {
		struct epoll_event evs[32];
		bool waiting = false;
		for (size_t i = 0; i < sizeof M.conns / sizeof M.conns[0]; i++)
			waiting |= M.conns[i] != NULL;
		int n = epoll_wait(M.ep, evs, 32, waiting ? 1000 : -1);
		if (n < 0 && errno != EINTR) {
			logmsg("epoll_wait: %s", strerror(errno));
			return 1;
		}
		for (int i = 0; i < n; i++) {
			struct watch *w = evs[i].data.ptr;
			// An event of a watch freed by an earlier one in this batch
			// cannot be told apart: every free first removes the fd from
			// the set, and the batch is re-fetched after a removal.
			switch (w->kind) {
			case K_LISTEN: on_listen(); break;
			case K_SIGNAL: reap(); break;
			case K_CONN:
				if (on_conn(w->p)) {
					close(M.listen);
					unlink(SOCKET_NAME);
					return 0;
				}
				break;
			case K_STREAM: {
				struct stream *s = w->p;
				if ((evs[i].events & EPOLLOUT) && s->c->pending)
					on_stdin_writable(s->c);
				if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
					on_stream(s);
				break;
			}
			case K_START: on_start_answer(w->p); break;
			case K_EXITOUT: on_exit_out(w->p); break;
			case K_CLIENT: on_client(w->p, evs[i].events); break;
			case K_STDIN: on_stdin_writable(w->p); break;
			}
			if (M.dirty) {
				M.dirty = false;
				break;
			}
		}
		if (waiting)
			expire();
	}
}
