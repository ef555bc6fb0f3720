/* SPDX-License-Identifier: MIT */
/* The unit test runner: every suite, one SRunner, Check's summary last. */
#include <stdlib.h>

#include "t_util.h"

int main(void)
{
	SRunner *sr = srunner_create(t_suite_ring());
	int failed;

	srunner_add_suite(sr, t_suite_poll());
	srunner_add_suite(sr, t_suite_loop());
	srunner_add_suite(sr, t_suite_timer());
	srunner_add_suite(sr, t_suite_async());
	srunner_add_suite(sr, t_suite_close());
	srunner_add_suite(sr, t_suite_scale());
	srunner_add_suite(sr, t_suite_badinput());
	srunner_add_suite(sr, t_suite_epoll());
	srunner_add_suite(sr, t_suite_faults());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
