// absl_tuning.h: abseil's settings are C++ only.
#include "absl_tuning.h"

#include <absl/synchronization/mutex.h>

void absl_tuning_quiet_mutexes(void)
{
	absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}
