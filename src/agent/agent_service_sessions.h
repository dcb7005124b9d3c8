// Session state of AgentService, shared by its translation units (agent_service.cpp: port,
// frames, fs, children, shutdown; agent_service_exec.cpp: exec sessions). Internal to the agent.
#pragma once

#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "agent/agent_service.h"

namespace msb::agent {

struct AgentService::ExecSession {
    uint32_t id = 0;
    pid_t pid = -1;
    bool tty = false;
    UniqueFd in;   // stdin pipe (write end); unused with a tty
    UniqueFd out;  // stdout pipe (read end) or pty master (also stdin with a tty)
    UniqueFd err;  // stderr pipe (read end); unused with a tty
    bool out_registered = false;
    bool err_registered = false;
    bool in_registered = false;
    bool out_wants_write = false;  // tty: EPOLLOUT for pending stdin
    std::deque<std::vector<uint8_t>> stdin_queue;
    size_t stdin_offset = 0;
    size_t stdin_bytes = 0;
    bool stdin_close_requested = false;
    bool stdin_closed = false;
    bool exited = false;
    int code = 0;

    int stdin_fd() const { return tty ? out.get() : in.get(); }
};

struct AgentService::FsReadSession {
    UniqueFd fd;
    std::string path;
};

struct AgentService::FsWriteSession {
    UniqueFd fd;
    std::string path;
    std::optional<std::string> error;
};

}  // namespace msb::agent
