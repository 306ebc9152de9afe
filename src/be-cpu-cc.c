/*
 * be-cpu-cc.c -- the C compiler as an interruptible child process.
 *
 * `sh -c <command>` is spawned in a process group of its own: a Ctrl-C at
 * the terminal goes to the foreground process group, which is R's, so the
 * compiler no longer dies under the user (the old "could not run: -1").
 * The parent polls the child with waitpid(WNOHANG) and the caller's
 * interrupt callback every 20 ms; on an interrupt it kills the whole group
 * (sh, the compiler driver, cc1, as, ld), reaps the child and returns
 * RK_EINTERRUPT, and the caller removes its temporary files.
 */
#define _GNU_SOURCE
#include "threads.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void pause_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* waitpid without blocking; 1 and *status when the child ended, 0 while it
   runs, -1 on error */
static int reap(pid_t pid, int *status) {
  /* only while the child runs: once reaped, pid is no longer ours */
  for (;;) {
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid)
      return 1;
    if (r == 0)
      return 0;
    if (errno != EINTR)
      return -1;
  }
}

/* kill the child's process group: SIGTERM, SIGKILL after 1 s.  The child
   is reaped last: until then its pid, the group's id, cannot be reused. */
static void kill_group(pid_t pid) {
  kill(-pid, SIGTERM);
  for (int i = 0; i < 50; i++) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == pid)
      break;
    pause_ms(20);
  }
  kill(-pid, SIGKILL); /* what is left of the group (cc1 may outlive sh) */
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
}

int rk_cc_run(const char *cmd, const char *logpath, const rk_options *o,
              rk_error *e) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  if (posix_spawn_file_actions_init(&fa) != 0)
    return rk_err(e, RK_ECOMPILE, -1, "the C compiler could not be started");
  if (posix_spawnattr_init(&at) != 0) {
    posix_spawn_file_actions_destroy(&fa);
    return rk_err(e, RK_ECOMPILE, -1, "the C compiler could not be started");
  }
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, logpath,
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  /* a group of its own, default signal dispositions and an empty mask
     (R blocks or catches some signals; the compiler must not inherit) */
  sigset_t none, dfl;
  sigemptyset(&none);
  sigemptyset(&dfl);
  sigaddset(&dfl, SIGINT);
  sigaddset(&dfl, SIGTERM);
  sigaddset(&dfl, SIGPIPE);
  sigaddset(&dfl, SIGCHLD);
  posix_spawnattr_setpgroup(&at, 0);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &dfl);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                    POSIX_SPAWN_SETSIGDEF);
  char *argv[] = {"sh", "-c", (char *)cmd, NULL};
  pid_t pid;
  int rc = posix_spawn(&pid, "/bin/sh", &fa, &at, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  if (rc != 0)
    return rk_err(e, RK_ECOMPILE, -1,
                  "the C compiler could not be started (/bin/sh: %s)",
                  strerror(rc));
  int status = 0;
  long wait = 1; /* ms: quick at first (most kernels take ~0.3 s) */
  for (;;) {
    int r = reap(pid, &status);
    if (r < 0) {
      kill_group(pid);
      return rk_err(e, RK_ECOMPILE, -1,
                    "lost the C compiler process (waitpid: %s)",
                    strerror(errno));
    }
    if (r > 0)
      break;
    if (o && o->interrupted && o->interrupted(o->interrupt_data)) {
      kill_group(pid);
      return rk_err(e, RK_EINTERRUPT, -1, "interrupted while compiling");
    }
    pause_ms(wait);
    if (wait < 20)
      wait *= 2;
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    return RK_OK;
  if (WIFEXITED(status))
    return rk_err(e, RK_ECOMPILE, -1, "exit status %d", WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return rk_err(
        e, RK_ECOMPILE, -1,
        "the C compiler was killed by signal %d (%s); no kernel was made",
        WTERMSIG(status), strsignal(WTERMSIG(status)));
  return rk_err(e, RK_ECOMPILE, -1,
                "the C compiler ended abnormally (wait status %d)", status);
}
