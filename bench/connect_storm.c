// Loopback connect/accept/close storm for bench/events_bench.py: a server
// thread accepts and closes first (its TIME_WAIT holds no client port), the
// main thread connects, waits for EOF and closes, for a number of seconds.
// Prints "connections seconds user_s system_s" (getrusage of this process).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int listener;

static void *serve(void *arg) {
  (void)arg;
  for (;;) {
    int fd = accept(listener, NULL, NULL);
    if (fd < 0) continue;
    close(fd);
  }
  return NULL;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  const double duration = argc > 1 ? atof(argv[1]) : 5.0;
  const int port = argc > 2 ? atoi(argv[2]) : 7070;
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  listener = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(listener, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(listener, 1024) != 0) {
    perror("listen");
    return 1;
  }
  pthread_t thread;
  pthread_create(&thread, NULL, serve, NULL);
  long connections = 0, failures = 0;
  const double start = now();
  double elapsed = 0;
  while ((elapsed = now() - start) < duration) {
    for (int i = 0; i < 100; ++i) {
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
        char byte;
        while (read(fd, &byte, 1) > 0) {
        }
        ++connections;
      } else {
        ++failures;
      }
      close(fd);
    }
  }
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  printf("%ld %.3f %.3f %.3f %ld\n", connections, elapsed,
         usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6,
         usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6, failures);
  return 0;
}
