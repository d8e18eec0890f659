/*
 * wharf's hello-world: the whole image is this one static program, /hello.
 *
 * No libc: it makes two system calls (write, exit_group) with inline assembly, so
 *   gcc -static -nostdlib -Os -s -fno-asynchronous-unwind-tables
 * yields a binary of a few KiB that runs in an otherwise empty root filesystem.
 */

static const char message[] =
    "\n"
    "Hello from wharf!\n"
    "This message shows that your installation appears to be working correctly.\n"
    "\n"
    "To generate this message, wharf took the following steps:\n"
    " 1. The wharf client contacted the wharf daemon.\n"
    " 2. The wharf daemon pulled the \"hello-world\" image from the registry.\n"
    " 3. The wharf daemon created a new container from that image which runs the\n"
    "    executable that produced the output you are currently reading.\n"
    " 4. The wharf daemon streamed that output to the wharf client, which sent it\n"
    "    to your terminal.\n"
    "\n"
    "To try something more ambitious, you can run a busybox container with:\n"
    " $ wharf run -it busybox sh\n"
    "\n";

#if defined(__x86_64__)
#define SYS_WRITE 1
#define SYS_EXIT_GROUP 231

static long sys3(long nr, long a, long b, long c)
{
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a), "S"(b), "d"(c)
                     : "rcx", "r11", "memory");
    return ret;
}
#elif defined(__aarch64__)
#define SYS_WRITE 64
#define SYS_EXIT_GROUP 94

static long sys3(long nr, long a, long b, long c)
{
    register long x8 __asm__("x8") = nr;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
    return x0;
}
#else
#error "hello.c knows the system call convention of x86_64 and aarch64 only"
#endif

#define EINTR 4

/* The kernel jumps here; there is no C runtime, so we never return. */
void _start(void)
{
    const char *p = message;
    long left = (long)sizeof(message) - 1;
    int status = 0;

    while (left > 0) {          /* a pipe may take the text in pieces */
        long n = sys3(SYS_WRITE, 1, (long)p, left);
        if (n == -EINTR)
            continue;
        if (n <= 0) {
            status = 1;
            break;
        }
        p += n;
        left -= n;
    }
    sys3(SYS_EXIT_GROUP, status, 0, 0);
    for (;;) {
    }
}
