/* setjmp.h for C compiled into the edge Worker. wasm32 without the exception-handling
 * proposal cannot unwind to a setjmp point, and wasi-libc has no setjmp.h. libaom uses
 * setjmp/longjmp only to report internal errors (a failed allocation): here setjmp returns 0
 * and longjmp traps, which ends the request with an error as a Rust panic would. */
#ifndef RAMPART_WASM32_SETJMP_H
#define RAMPART_WASM32_SETJMP_H

typedef int jmp_buf[1];

#define setjmp(env) ((void)(env), 0)

static inline __attribute__((noreturn)) void longjmp(jmp_buf env, int value) {
  (void)env;
  (void)value;
  __builtin_trap();
}

#endif
