-- 0007 was never written: the second wave numbered its migrations 0006 and
-- 0008. The runner now refuses gaps in the numbering (a missing file is more
-- often a merge that lost one than a choice), so the number is filled with
-- this statement that changes nothing. A database that already applied 0008
-- applies this one next, harmlessly.
SELECT 1;
