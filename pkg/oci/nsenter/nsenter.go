// Package nsenter joins a running container's namespaces before the Go
// runtime starts. A process with threads cannot setns into a mount
// namespace, and a Go program has threads before main runs; so, as runc's
// nsexec does, a C constructor runs first in every crid process, and when
// it finds _CRID_NSENTER_PID in the environment it puts the process in
// the target's cgroups, joins its cgroup, IPC, UTS, network, PID and mount
// namespaces, and forks: the child (in the PID namespace, with
// PR_SET_PDEATHSIG so it never outlives the parent) goes on into Go, and
// the parent waits for it and exits as it did. Import it for effect.
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

__attribute__((constructor)) static void crid_nsenter(void) {
	const char *pid = getenv("_CRID_NSENTER_PID");
	if (pid == NULL || *pid == '\0')
		return;
	// Cgroups first, while the host's /sys is still the one we see:
	// a colon-separated list of cgroup.procs files.
	const char *procs = getenv("_CRID_NSENTER_CGROUP_PROCS");
	if (procs != NULL && *procs != '\0') {
		char *list = strdup(procs), *save = NULL;
		char me[32];
		snprintf(me, sizeof me, "%d", getpid());
		for (char *p = strtok_r(list, ":", &save); p != NULL; p = strtok_r(NULL, ":", &save)) {
			int fd = open(p, O_WRONLY | O_CLOEXEC);
			if (fd < 0 || write(fd, me, strlen(me)) < 0)
				die("join cgroup", p);
			close(fd);
		}
		free(list);
	}
	// Open every namespace before joining any: after the mount namespace
	// the host's /proc is out of reach.
	const char *kinds[] = {"cgroup", "ipc", "uts", "net", "pid", "mnt"};
	int fds[6];
	for (int i = 0; i < 6; i++) {
		char path[128];
		snprintf(path, sizeof path, "/proc/%s/ns/%s", pid, kinds[i]);
		fds[i] = open(path, O_RDONLY | O_CLOEXEC);
		if (fds[i] < 0)
			die("open", path);
	}
	for (int i = 0; i < 6; i++) {
		if (setns(fds[i], 0) < 0)
			die("setns", kinds[i]);
		close(fds[i]);
	}
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
		unsetenv("_CRID_NSENTER_CGROUP_PROCS");
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

// CgroupProcsEnv lists the cgroup.procs files to join first, ':'-separated.
const CgroupProcsEnv = "_CRID_NSENTER_CGROUP_PROCS"
