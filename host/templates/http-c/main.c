/* An HTTP function in C, run CGI-style (WAGI): the request arrives in environment variables
 * and on stdin; print headers, a blank line, then the body. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    const char *path = getenv("PATH_INFO");
    const char *query = getenv("QUERY_STRING");
    printf("Content-Type: application/json\n\n");
    printf("{\"hello\":\"from C\",\"path\":\"%s\",\"query\":\"%s\"}\n",
           path ? path : "/", query ? query : "");
    return 0;
}
