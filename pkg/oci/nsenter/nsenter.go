// Package nsenter joins namespaces before the Go runtime starts. A process
// with threads cannot setns into a mount or user namespace, and a Go
// program has threads before main runs; so, as runc's nsexec does, C
// constructors run first in every crid process. Import it for effect.
//
// First of all, when _CRID_CGROUP_JOIN lists cgroup membership files, the
// process puts itself in each, by writing 0: a v1 hierarchy's "tasks" file
// (the calling thread, the only one yet), v2's "cgroup.procs". Moving
// another process in costs the kernel a synchronize_rcu (10-15 ms here),
// as the whole thread group must hold still; a lone thread moving itself
// does not, on v1.
//
// For an exec, when _CRID_NSENTER_PID is in the environment, the process
// (in the target's cgroups by then) joins its cgroup, IPC, UTS, network,
// PID and mount namespaces, and its user namespace when that is not the
// host's, and forks: the child (in the PID namespace, with
// PR_SET_PDEATHSIG so it never outlives the parent) goes on into Go, and
// the parent waits for it and exits as it did.
//
// For a container's init in a pod's user namespace, when _CRID_INIT_USERNS
// names it, the process (already in the pod's other namespaces, joined by
// its starter as the host's root) joins the user namespace, becomes its
// root, and makes its mount namespace there, so the container's root owns
// it; with _CRID_INIT_NEWPID it also makes a PID namespace and forks, and
// the parent writes "pid N\n" (the child's PID as the starter sees it) on
// descriptor 3 and exits: the child is the container's PID 1.
package nsenter

/*
#cgo CFLAGS: -Wall
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile pid_t crid_child;

// A stop request (SIGTERM, SIGINT, SIGHUP) to the parent kills the process
// in the container at once; the parent then reaps it and exits, so the
// exec leaves no zombie behind in the container.
static void crid_forward(int sig) {
	(void)sig;
	if (crid_child > 0)
		kill(crid_child, SIGKILL);
}

static void die(const char *what, const char *arg) {
	fprintf(stderr, "crid nsenter: %s %s: %s\n", what, arg, strerror(errno));
	_exit(126);
}

// becomeRoot makes a process that joined a user namespace its root: the
// host's root is not mapped there, and files it made would fail.
static void becomeRoot(void) {
	if (setresgid(0, 0, 0) < 0)
		die("setresgid", "0");
	if (setresuid(0, 0, 0) < 0)
		die("setresuid", "0");
}

// initFail reports a container init's setup error to its starter on the
// sync socket (descriptor 3), as the Go init would, and exits.
static void initFail(const char *what) {
	char msg[256];
	int n = snprintf(msg, sizeof msg, "%s: %s", what, strerror(errno));
	if (n > 0)
		write(3, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
	_exit(1);
}

__attribute__((constructor)) static void crid_init_userns(void) {
	const char *path = getenv("_CRID_INIT_USERNS");
	if (path == NULL || *path == '\0')
		return;
	int newpid = getenv("_CRID_INIT_NEWPID") != NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		initFail("open the pod's user namespace");
	unsetenv("_CRID_INIT_USERNS");
	unsetenv("_CRID_INIT_NEWPID");
	if (setns(fd, CLONE_NEWUSER) < 0)
		initFail("join the pod's user namespace");
	close(fd);
	if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
		initFail("become root of the user namespace");
	if (unshare(CLONE_NEWNS | (newpid ? CLONE_NEWPID : 0)) < 0)
		initFail("make the container's mount and PID namespaces");
	if (!newpid)
		return;
	pid_t child = fork();
	if (child < 0)
		initFail("fork into the PID namespace");
	if (child == 0) {
		// A session of its own again (the parent led the last one), for
		// the container's terminal.
		setsid();
		return; // into the Go runtime: the container's init, PID 1
	}
	char msg[32];
	int n = snprintf(msg, sizeof msg, "pid %d\n", child);
	if (write(3, msg, n) != n)
		_exit(1);
	_exit(0);
}

// crid_join_cgroups runs before the other constructors (priority 101),
// while the host's /sys is still the one we see and the process has one
// thread.
__attribute__((constructor(101))) static void crid_join_cgroups(void) {
	const char *files = getenv("_CRID_CGROUP_JOIN");
	if (files == NULL || *files == '\0')
		return;
	char *list = strdup(files), *save = NULL;
	for (char *p = strtok_r(list, ":", &save); p != NULL; p = strtok_r(NULL, ":", &save)) {
		int fd = open(p, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "0", 1) < 0) {
			// An exec's errors go to its stderr; an init's to its starter.
			if (getenv("_CRID_NSENTER_PID") != NULL)
				die("join cgroup", p);
			initFail("join the container's cgroup");
		}
		close(fd);
	}
	free(list);
	unsetenv("_CRID_CGROUP_JOIN");
}

__attribute__((constructor)) static void crid_nsenter(void) {
	const char *pid = getenv("_CRID_NSENTER_PID");
	if (pid == NULL || *pid == '\0')
		return;
	// Open every namespace before joining any: after the mount namespace
	// the host's /proc is out of reach. The user namespace comes last: as
	// the host's root every other one can be joined, and a container's
	// namespaces belong to its user namespace.
	const char *kinds[] = {"cgroup", "ipc", "uts", "net", "pid", "mnt", "user"};
	int fds[7];
	for (int i = 0; i < 7; i++) {
		char path[128];
		snprintf(path, sizeof path, "/proc/%s/ns/%s", pid, kinds[i]);
		fds[i] = open(path, O_RDONLY | O_CLOEXEC);
		if (fds[i] < 0)
			die("open", path);
	}
	struct stat own, target;
	if (stat("/proc/self/ns/user", &own) < 0 || fstat(fds[6], &target) < 0)
		die("stat", "user namespace");
	int joinUser = own.st_ino != target.st_ino || own.st_dev != target.st_dev;
	for (int i = 0; i < 7; i++) {
		if (i == 6 && !joinUser) {
			close(fds[i]);
			continue;
		}
		if (setns(fds[i], 0) < 0)
			die("setns", kinds[i]);
		close(fds[i]);
	}
	if (joinUser)
		becomeRoot();
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = crid_forward;
	pid_t child = fork();
	if (child < 0)
		die("fork", "");
	if (child == 0) {
		// Should the parent be SIGKILLed instead, the process still dies.
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		if (getppid() == 1)
			_exit(126);
		unsetenv("_CRID_NSENTER_PID");
		return; // into the Go runtime, inside the container
	}
	crid_child = child;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	int status;
	while (waitpid(child, &status, 0) < 0) {
		if (errno != EINTR)
			_exit(126);
	}
	if (WIFEXITED(status))
		_exit(WEXITSTATUS(status));
	if (WIFSIGNALED(status))
		_exit(128 + WTERMSIG(status));
	_exit(126);
}
*/
import "C"

// PidEnv names the container process whose namespaces to join.
const PidEnv = "_CRID_NSENTER_PID"

// InitUsernsEnv names the pinned user namespace a container's init joins.
const InitUsernsEnv = "_CRID_INIT_USERNS"

// InitNewPIDEnv, set, makes the init's PID namespace after it joined the
// user namespace (and reports the PID of the forked init on fd 3).
const InitNewPIDEnv = "_CRID_INIT_NEWPID"

// CgroupJoinEnv lists the cgroup membership files (v1 "tasks", v2
// "cgroup.procs") a process joins first of all, ':'-separated.
const CgroupJoinEnv = "_CRID_CGROUP_JOIN"
