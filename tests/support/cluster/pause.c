/* The pod sandbox's pause program, for the tests' cluster: it holds the pod's namespaces, reaps
 * what is orphaned into it, and exits on SIGINT or SIGTERM. Built static (musl-gcc) into a
 * FROM-scratch image, as Kubernetes's own pause image is: no image can be pulled here. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int signal) {
  (void)signal;
  _exit(0);
}

static void reap(int signal) {
  (void)signal;
  while (waitpid(-1, 0, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction on_stop = {.sa_handler = stop};
  struct sigaction on_child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
  sigaction(SIGINT, &on_stop, 0);
  sigaction(SIGTERM, &on_stop, 0);
  sigaction(SIGCHLD, &on_child, 0);
  for (;;) {
    pause();
  }
}
