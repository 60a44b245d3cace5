/* stdin/stdout/stderr over a user socket duplicated onto 0, 1 or 2 (stdstreams.c). */
#ifndef USERTCP_STDSTREAMS_H
#define USERTCP_STDSTREAMS_H

/* After a user socket landed on fd (0..2): point the standard stream at a stream that reaches it. */
void ut_std_stream_attach(int fd);
/* Nonzero once any standard stream was taken over (keeps kernel dup2s on the fast path until then). */
extern int ut_std_streams_taken;
/* Before a kernel fd lands on fd (0..2): flush our stream and put libc's back. */
void ut_std_stream_detach(int fd);

#endif
