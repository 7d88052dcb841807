from flink_jobs.answers.job import main

main()
