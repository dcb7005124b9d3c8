// Runs as a user process inside a booted guest and checks that glibc only uses the vector state
// the guest kernel preserves across a context switch.
//
// When the OS has not enabled AVX (XCR0 lacks SSE|AVX) nothing can leak. Otherwise two
// processes each keep their own value in %ymm7 while the scheduler switches between them and
// read it back. On PVM the guest kernel runs with `noxsave` and saves only FXSAVE state, but
// user code runs under the host's XCR0: the upper half of %ymm7 then carries the other
// process's bytes (or zeros after its vzeroupper). That is tolerable only if glibc, which would
// otherwise pick its AVX string functions, has been told to stay off AVX (GLIBC_TUNABLES).
//
// Prints one verdict line; exits 1 when state leaks while glibc uses AVX, else 0.
#include <cpuid.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/platform/x86.h>
#include <sys/wait.h>
#include <unistd.h>

enum { kCpuidOsxsave = 1u << 27, kCpuidAvx = 1u << 28, kXcr0SseAvx = 0x6 };

static uint64_t read_xcr0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

// Holds `fill` in all 32 bytes of %ymm7 across sleeps; returns how many rounds read back
// something else.
static int hold_ymm7(uint8_t fill, int rounds) {
    uint8_t want[32];
    uint8_t got[32];
    memset(want, fill, sizeof want);
    int changed = 0;
    for (int i = 0; i < rounds; i++) {
        __asm__ volatile("vmovdqu %0, %%ymm7" : : "m"(want) : "xmm7");
        sched_yield();
        usleep(200);
        __asm__ volatile("vmovdqu %%ymm7, %0" : "=m"(got));
        if (memcmp(want, got, sizeof want) != 0) changed++;
    }
    return changed;
}

int main(int argc, char** argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 100;
    unsigned eax, ebx, ecx, edx;
    __cpuid(1, eax, ebx, ecx, edx);
    uint64_t xcr0 = (ecx & kCpuidOsxsave) ? read_xcr0() : 0;
    printf("xstate: cpuid avx=%d osxsave=%d xcr0=%#llx\n", !!(ecx & kCpuidAvx),
           !!(ecx & kCpuidOsxsave), (unsigned long long)xcr0);
    if (!(ecx & kCpuidAvx) || !(ecx & kCpuidOsxsave) || (xcr0 & kXcr0SseAvx) != kXcr0SseAvx) {
        printf("xstate: AVX is not enabled by the OS\n");
        return 0;
    }
    int glibc_avx =
        CPU_FEATURE_ACTIVE(AVX) || CPU_FEATURE_ACTIVE(AVX2) || CPU_FEATURE_ACTIVE(AVX512F);
    pid_t a = fork();
    if (a == 0) _exit(hold_ymm7(0x11, rounds) ? 1 : 0);
    pid_t b = fork();
    if (b == 0) _exit(hold_ymm7(0x22, rounds) ? 1 : 0);
    int status_a = 0;
    int status_b = 0;
    waitpid(a, &status_a, 0);
    waitpid(b, &status_b, 0);
    int leaked = !WIFEXITED(status_a) || WEXITSTATUS(status_a) != 0 || !WIFEXITED(status_b) ||
                 WEXITSTATUS(status_b) != 0;
    printf("xstate: AVX enabled by the CPU; %%ymm7 %s across context switches; glibc AVX %s\n",
           leaked ? "LEAKS between processes" : "is preserved", glibc_avx ? "on" : "off");
    return leaked && glibc_avx ? 1 : 0;
}
