"""What the tests share: model file builders, fakes, servers, a tmux driver and the
paths of the reference fixtures."""
