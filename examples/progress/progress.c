/* progress: a compiled program to run as a Conveyor `exec` job.
 *
 * It works for STEPS steps of SECONDS each, printing `PROGRESS <percent> step k/N` on stdout
 * after each one (the progress protocol of exec jobs) and `progress: step k/N` on stderr, then
 * a JSON result line, and exits with EXIT_CODE (0 unless given).
 *
 *   cc -O2 -Wall -Wextra -o progress progress.c
 *   ./progress 10 0.5            # 10 steps of half a second, then {"steps":10,...}, exit 0
 *   ./progress 3 0.1 7           # fails: exit code 7, with a line about it on stderr
 *
 * Options (before the arguments), for trying what the worker does to a process tree:
 *   --fork          start a child, which starts a grandchild; both sleep until killed
 *   --ignore-term   ignore SIGTERM in every process, so only SIGKILL ends them
 *   --pidfile PATH  write the pids (this process first, then child and grandchild) to PATH,
 *                   one a line, once they all run (written to PATH.tmp, then renamed)
 *   --signal N      at the end, die by signal N (e.g. 11, SIGSEGV) instead of exiting
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static void usage(void) {
    fprintf(stderr,
            "usage: progress [--fork] [--ignore-term] [--pidfile PATH] [--signal N] "
            "STEPS SECONDS_PER_STEP [EXIT_CODE]\n");
    exit(2);
}

static void sleep_for(double seconds) {
    struct timespec left;
    left.tv_sec = (time_t)seconds;
    left.tv_nsec = (long)((seconds - (double)left.tv_sec) * 1e9);
    while (nanosleep(&left, &left) == -1 && errno == EINTR) {
    }
}

static void sleep_until_killed(void) {
    for (;;) pause();
}

/* A child that starts a grandchild; both sleep until killed. Returns the child's pid and
 * stores the grandchild's in *grandchild (the child sends it through a pipe). */
static pid_t start_tree(pid_t *grandchild) {
    int fds[2];
    if (pipe(fds) == -1) {
        perror("progress: pipe");
        exit(3);
    }
    pid_t child = fork();
    if (child == -1) {
        perror("progress: fork");
        exit(3);
    }
    if (child == 0) {
        close(fds[0]);
        pid_t inner = fork();
        if (inner == -1) {
            perror("progress: fork");
            _exit(3);
        }
        if (inner == 0) {
            close(fds[1]);
            sleep_until_killed();
        }
        if (write(fds[1], &inner, sizeof inner) != (ssize_t)sizeof inner) _exit(3);
        close(fds[1]);
        sleep_until_killed();
    }
    close(fds[1]);
    if (read(fds[0], grandchild, sizeof *grandchild) != (ssize_t)sizeof *grandchild) {
        fprintf(stderr, "progress: the child did not report its child's pid\n");
        exit(3);
    }
    close(fds[0]);
    return child;
}

static void write_pidfile(const char *path, pid_t child, pid_t grandchild) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        fprintf(stderr, "progress: --pidfile path too long\n");
        exit(2);
    }
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        perror("progress: --pidfile");
        exit(3);
    }
    fprintf(f, "%ld\n", (long)getpid());
    if (child > 0) fprintf(f, "%ld\n%ld\n", (long)child, (long)grandchild);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        perror("progress: --pidfile");
        exit(3);
    }
}

int main(int argc, char **argv) {
    int fork_tree = 0, ignore_term = 0, die_by = 0;
    const char *pidfile = NULL;
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--fork") == 0) {
            fork_tree = 1;
        } else if (strcmp(argv[i], "--ignore-term") == 0) {
            ignore_term = 1;
        } else if (strcmp(argv[i], "--pidfile") == 0 && i + 1 < argc) {
            pidfile = argv[++i];
        } else if (strcmp(argv[i], "--signal") == 0 && i + 1 < argc) {
            die_by = atoi(argv[++i]);
        } else {
            usage();
        }
    }
    if (argc - i < 2 || argc - i > 3) usage();
    char *end;
    long steps = strtol(argv[i], &end, 10);
    if (*end != '\0' || steps < 1 || steps > 1000000) usage();
    double seconds = strtod(argv[i + 1], &end);
    if (*end != '\0' || !(seconds >= 0) || seconds > 86400) usage();
    int exit_code = argc - i == 3 ? atoi(argv[i + 2]) : 0;

    setvbuf(stdout, NULL, _IOLBF, 0); /* a pipe is block-buffered: send each line at once */
    if (ignore_term) signal(SIGTERM, SIG_IGN); /* inherited by the children */
    pid_t child = 0, grandchild = 0;
    if (fork_tree) child = start_tree(&grandchild);
    if (pidfile != NULL) write_pidfile(pidfile, child, grandchild);

    for (long k = 1; k <= steps; k++) {
        sleep_for(seconds);
        printf("PROGRESS %.1f step %ld/%ld\n", 100.0 * (double)k / (double)steps, k, steps);
        fprintf(stderr, "progress: step %ld/%ld\n", k, steps);
    }
    printf("{\"steps\": %ld, \"seconds_per_step\": %g, \"pid\": %ld, \"exit_code\": %d}\n", steps,
           seconds, (long)getpid(), exit_code);
    if (die_by > 0) {
        fprintf(stderr, "progress: dying by signal %d on purpose\n", die_by);
        struct rlimit none = {0, 0};
        setrlimit(RLIMIT_CORE, &none); /* no core file in the job's directory */
        signal(die_by, SIG_DFL);
        raise(die_by);
    }
    if (exit_code != 0) fprintf(stderr, "progress: failing with exit code %d on purpose\n", exit_code);
    return exit_code;
}
