/*
 * A C function for ledge, run WAGI-style (`executor = { type = "wagi" }`): the request comes
 * in as CGI environment variables and stdin, the response goes out on stdout as CGI headers, a
 * blank line and the body. Built with Debian's clang and wasi-libc as a wasip1 command; ledge
 * turns it into a component when it loads it.
 *
 *   clang --target=wasm32-wasi -O2 -o hello-c.wasm main.c
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *env(const char *name) {
    const char *value = getenv(name);
    return value ? value : "";
}

/* GET /c/hello?name=Ada: a greeting built from the query and the request metadata. */
static int hello(int argc, char **argv) {
    const char *name = "world";
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "name=", 5) == 0) name = argv[i] + 5;
    }
    printf("Content-Type: application/json\n\n");
    printf("{\"hello\":\"%s\",\"method\":\"%s\",\"route\":\"%s\",\"language\":\"c\"}\n",
           name, env("REQUEST_METHOD"), env("X_MATCHED_ROUTE"));
    return 0;
}

/* POST /c/shout: the body, upper-cased, and how long it was. */
static int shout(void) {
    if (strcmp(env("REQUEST_METHOD"), "POST") != 0) {
        printf("Status: 405 Method Not Allowed\nAllow: POST\nContent-Type: text/plain\n\n"
               "use POST\n");
        return 0;
    }
    printf("Content-Type: text/plain\nX-Content-Length: %s\n\n", env("CONTENT_LENGTH"));
    int c;
    while ((c = getchar()) != EOF) putchar(toupper(c));
    return 0;
}

int main(int argc, char **argv) {
    const char *path = env("PATH_INFO");
    if (strcmp(path, "/hello") == 0) return hello(argc, argv);
    if (strcmp(path, "/shout") == 0) return shout();
    if (strcmp(path, "/forever") == 0) {
        for (volatile unsigned long n = 0;; n++) {
        }
    }
    if (strcmp(path, "/fail") == 0) {
        fprintf(stderr, "failing on purpose\n");
        return 3;
    }
    printf("Status: 404 Not Found\nContent-Type: text/plain\n\nno route for %s\n", path);
    return 0;
}
