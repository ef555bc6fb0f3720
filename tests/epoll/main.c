// SPDX-License-Identifier: MIT
/*
 * epoll conformance suite: runs every area's Suite and exits non-zero if
 * any test failed. CK_FORK=no, CK_RUN_SUITE and CK_RUN_CASE work as usual.
 */
#include "t_epoll.h"

int main(void)
{
	SRunner *sr;
	int failed;

	/* A write to a pipe or socket whose peer is gone must be EPIPE. */
	signal(SIGPIPE, SIG_IGN);
	/* "skip:" lines and Check's output, in the order they happen. */
	setvbuf(stdout, NULL, _IOLBF, 0);

	/* Cheap areas first, so a basic breakage shows before the rest. */
	sr = srunner_create(t_suite_create());
	srunner_add_suite(sr, t_suite_ctl_errors());
	srunner_add_suite(sr, t_suite_wait());
	srunner_add_suite(sr, t_suite_badptr());
	srunner_add_suite(sr, t_suite_lt());
	srunner_add_suite(sr, t_suite_et());
	srunner_add_suite(sr, t_suite_oneshot());
	srunner_add_suite(sr, t_suite_flags());
	srunner_add_suite(sr, t_suite_pipes());
	srunner_add_suite(sr, t_suite_sockets());
	srunner_add_suite(sr, t_suite_fdtypes());
	srunner_add_suite(sr, t_suite_epollfd());
	srunner_add_suite(sr, t_suite_close());
	srunner_add_suite(sr, t_suite_fork());
	srunner_add_suite(sr, t_suite_threads());
	srunner_add_suite(sr, t_suite_signals());
	srunner_add_suite(sr, t_suite_deviations());
	srunner_add_suite(sr, t_suite_host());
	srunner_add_suite(sr, t_suite_pollable());
	srunner_add_suite(sr, t_suite_rawclose());
	srunner_add_suite(sr, t_suite_taskwork());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
